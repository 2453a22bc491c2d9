import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ForgeAdapter } from "../services/roles/webhooks/forge-hooks.js";
import { startHttpApp } from "./helpers/http-app.js";
import { startRedis } from "./helpers/redis.js";

/**
 * Webhook deliveries are served before Express (app.ts, FrontHandler) when their URL is spelled plainly,
 * and by Express's router otherwise. A sender must not be able to tell which one answered: the same
 * delivery gets the same answer, build and error either way.
 */
const gitlabHook = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "fixtures", "gitlab", "gitlab-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;

/** A forge that signs deliveries, so a delivery without a body has to be checked against a signature. */
const signedForge: ForgeAdapter = {
  route: "signed",
  label: "Signed",
  auth: { kind: "hmac-sha256", header: "x-signed-signature" },
  eventHeader: "x-signed-event",
  pushEvents: new Set(["push"]),
  parse: () => {
    throw new Error("not reached: no delivery here is signed right");
  },
};

let redis: Awaited<ReturnType<typeof startRedis>>;
let app: Awaited<ReturnType<typeof startHttpApp>>;
let tool: Awaited<ReturnType<typeof app.createTool>>;

beforeAll(async () => {
  redis = await startRedis();
  app = await startHttpApp(redis.url, undefined, { forges: [signedForge] });
  tool = await app.createTool("front-door");
});
afterAll(async () => {
  await app?.close();
  await redis?.stop();
});

const sha = (n: number) => n.toString(16).padStart(40, "e");

function deliver(url: string, commit: string, init: { gzip?: boolean; secret?: string } = {}) {
  const json = JSON.stringify({ ...gitlabHook, checkout_sha: commit, after: commit });
  return fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": init.secret ?? tool.webhook_secret,
      ...(init.gzip ? { "content-encoding": "gzip" } : {}),
    },
    body: init.gzip ? gzipSync(json) : json,
  });
}

/** A request written by hand: fetch and node:http always frame a POST's body, this one has none. */
function bodilessPost(target: string, headers: Record<string, string>): Promise<string> {
  const { port } = new URL(app.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1");
    let answer = "";
    socket.on("data", (d: Buffer) => (answer += d.toString("utf8")));
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
    const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
    socket.write(
      [`POST ${target} HTTP/1.1`, "host: 127.0.0.1", "connection: close", ...lines, "", ""].join("\r\n"),
    );
  });
}

describe("webhook deliveries served before Express", () => {
  it("queues a build for the plain URL, the trailing-slash URL and a gzip body alike", async () => {
    const answers = await Promise.all([
      deliver(`${app.url}/hooks/gitlab/${tool.name}`, sha(1)),
      deliver(`${app.url}/hooks/gitlab/${tool.name}/`, sha(2)),
      deliver(`${app.url}/hooks/gitlab/${tool.name}`, sha(3), { gzip: true }),
    ]);
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as { status: string; commit: string }[];
    expect(answers.map((r) => r.status)).toEqual([202, 202, 202]);
    expect(bodies.map((b) => [b.status, b.commit])).toEqual([
      ["queued", sha(1)],
      ["queued", sha(2)],
      ["queued", sha(3)],
    ]);
    const builds = await app.store.listBuilds(tool.name, 10);
    expect(builds.map((b) => b.commit).sort()).toEqual([sha(1), sha(2), sha(3)]);
  });

  it("answers a wrong secret and an oversized body with the same errors on both paths", async () => {
    for (const suffix of ["", "/"]) {
      const wrong = await deliver(`${app.url}/hooks/gitlab/${tool.name}${suffix}`, sha(4), {
        secret: "nope",
      });
      expect(wrong.status).toBe(401);
      expect(await wrong.json()).toEqual({
        error: { code: "unauthorized", message: "X-Gitlab-Token does not match this tool's webhook secret" },
      });
      const big = await fetch(`${app.url}/hooks/gitlab/${tool.name}${suffix}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-gitlab-token": tool.webhook_secret },
        body: "x".repeat(64 * 1024 + 1),
      });
      expect(big.status).toBe(413);
      expect(await big.json()).toEqual({
        error: { code: "payload_too_large", message: `request body exceeds ${64 * 1024} bytes` },
      });
    }
  });

  it("refuses a signed-forge delivery without any body with 401, not an internal error", async () => {
    const answer = await bodilessPost(`/hooks/signed/${tool.name}`, {
      "x-signed-signature": "ab".repeat(32),
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer).toContain('"code":"unauthorized"');
  });
});
