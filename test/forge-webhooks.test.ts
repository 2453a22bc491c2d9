import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { forgeWebhooks, type ForgeAdapter } from "../services/roles/webhooks/forge-hooks.js";
import { gitlabForge } from "../services/roles/webhooks/gitlab.js";
import { startHttpApp } from "./helpers/http-app.js";
import { startRedis } from "./helpers/redis.js";

/**
 * The forge seam: a forge that signs its deliveries (Gitea's X-Gitea-Signature, HMAC-SHA256 of the raw
 * body) is one small adapter, registered beside GitLab's. It can only work because the webhook secret is
 * kept sealed (readable by Slipway) and not just hashed.
 */
const giteaPush = z.object({
  ref: z.string(),
  after: z.string(),
  repository: z.object({ clone_url: z.string(), default_branch: z.string() }),
  pusher: z.object({ login: z.string() }),
});

const giteaForge: ForgeAdapter = {
  route: "gitea",
  label: "Gitea",
  auth: { kind: "hmac-sha256", header: "x-gitea-signature" },
  eventHeader: "x-gitea-event",
  pushEvents: new Set(["push"]),
  deliveryHeader: "x-gitea-delivery",
  parse(_event, body) {
    const push = giteaPush.parse(body);
    return {
      ref: push.ref,
      commit: push.after,
      sourceUrl: push.repository.clone_url,
      defaultBranch: push.repository.default_branch,
      trigger: { kind: "forge_push", ref: push.ref, actor: push.pusher.login },
    };
  },
};

const gitlabHook = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "fixtures", "gitlab", "gitlab-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;

let redis: Awaited<ReturnType<typeof startRedis>>;
let app: Awaited<ReturnType<typeof startHttpApp>>;
let raw: Redis;

beforeAll(async () => {
  redis = await startRedis();
  app = await startHttpApp(redis.url, undefined, { forges: [giteaForge] });
  raw = new Redis(redis.url);
});
afterAll(async () => {
  raw?.disconnect();
  await app?.close();
  await redis?.stop();
});

type Answer = { status: string; build_id?: string; redelivery?: boolean; reason?: string; error?: unknown };
const sha = (n: number) => n.toString(16).padStart(40, "c");

async function giteaDelivery(tool: string, signWith: string, commit: string, delivery?: string) {
  const body = JSON.stringify({
    ref: "refs/heads/main",
    after: commit,
    repository: { clone_url: "https://gitea.example.org/team/app.git", default_branch: "main" },
    pusher: { login: "ada" },
  });
  const res = await fetch(`${app.url}/hooks/gitea/${tool}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitea-event": "push",
      "x-gitea-signature": createHmac("sha256", signWith).update(body).digest("hex"),
      ...(delivery ? { "x-gitea-delivery": delivery } : {}),
    },
    body,
  });
  return { status: res.status, body: (await res.json()) as Answer };
}

async function gitlabDelivery(tool: string, secret: string, commit: string) {
  const res = await fetch(`${app.url}/hooks/gitlab/${tool}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-gitlab-event": "Push Hook", "x-gitlab-token": secret },
    body: JSON.stringify({ ...gitlabHook, checkout_sha: commit, after: commit }),
  });
  return { status: res.status, body: (await res.json()) as Answer };
}

/** The tool record exactly as Redis holds it. */
async function stored(tool: string): Promise<string> {
  const keys = await raw.keys(`slipway:tool:${tool}`);
  return (await raw.get(keys[0]!)) ?? "";
}

describe("webhook secrets at rest", () => {
  it("keeps a new tool's webhook secret sealed, never in plaintext", async () => {
    const tool = await app.createTool("sealed-secret");
    const record = await stored(tool.name);
    expect(record).not.toContain(tool.webhook_secret);
    expect(JSON.parse(record)).toMatchObject({ webhook_secret_sealed: expect.stringMatching(/^v1:/) });
  });
});

describe("a forge that signs its deliveries (Gitea-style HMAC adapter registered by the test)", () => {
  it("builds a correctly signed push", async () => {
    const tool = await app.createTool("gitea-signed");
    const answer = await giteaDelivery(tool.name, tool.webhook_secret, sha(1));
    expect(answer).toMatchObject({ status: 202, body: { status: "queued", commit: sha(1) } });
    const builds = await app.store.listBuilds(tool.name, 10);
    expect(builds.map((b) => [b.commit, b.trigger.kind, b.trigger.actor, b.source_url])).toEqual([
      [sha(1), "forge_push", "ada", "https://gitea.example.org/team/app.git"],
    ]);
  });

  it("refuses a delivery signed with another secret with 401, and builds nothing", async () => {
    const tool = await app.createTool("gitea-forged");
    const answer = await giteaDelivery(tool.name, "slw_not-the-secret", sha(2));
    expect(answer.status).toBe(401);
    expect(JSON.stringify(answer.body)).toContain("X-Gitea-Signature is not a signature made with");
    expect(await app.store.listBuilds(tool.name, 10)).toEqual([]);
  });

  it("refuses an unknown tool like a bad signature", async () => {
    const answer = await giteaDelivery("no-such-tool", "anything", sha(3));
    expect(answer.status).toBe(401);
  });

  it("answers a redelivery (same X-Gitea-Delivery) as the first, without a second build", async () => {
    const tool = await app.createTool("gitea-redeliver");
    const first = await giteaDelivery(tool.name, tool.webhook_secret, sha(4), "delivery-1");
    const again = await giteaDelivery(tool.name, tool.webhook_secret, sha(4), "delivery-1");
    expect(first.status).toBe(202);
    expect(again).toMatchObject({
      status: 200,
      body: { status: "duplicate", build_id: first.body.build_id, redelivery: true },
    });
    expect(await app.store.listBuilds(tool.name, 10)).toHaveLength(1);
  });

  it("seals the secret of a tool stored before sealing once GitLab presents it, then checks signatures", async () => {
    const tool = await app.createTool("gitea-migrated");
    // A tool record as older Slipway versions wrote it: the webhook secret as a hash only.
    await app.store.updateTool(tool.name, { webhook_secret_sealed: undefined });
    expect(JSON.parse(await stored(tool.name))).not.toHaveProperty("webhook_secret_sealed");

    const refused = await giteaDelivery(tool.name, tool.webhook_secret, sha(5));
    expect(refused.status).toBe(401);
    expect(JSON.stringify(refused.body)).toContain("predates encrypted storage");

    // The hash still verifies GitLab's token, and that delivery seals the secret.
    expect((await gitlabDelivery(tool.name, tool.webhook_secret, sha(6))).status).toBe(202);
    expect(JSON.parse(await stored(tool.name))).toMatchObject({
      webhook_secret_sealed: expect.stringMatching(/^v1:/),
    });
    expect((await giteaDelivery(tool.name, tool.webhook_secret, sha(7))).status).toBe(202);
  });
});

describe("the forge registry", () => {
  it("refuses at start two forges on one route, naming it", () => {
    const deps = {} as Parameters<typeof forgeWebhooks>[0];
    expect(() => forgeWebhooks(deps, [gitlabForge, { ...giteaForge, route: "gitlab" }])).toThrow(
      /forge route "gitlab" is registered twice/,
    );
  });
});
