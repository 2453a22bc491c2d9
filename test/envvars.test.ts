import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podman } from "../services/adapters/podman/podman.js";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, pythonServer, viaProxy, waitFor } from "./helpers/apps.js";
import { startRedis } from "./helpers/redis.js";
import { clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";

/**
 * Environment variables on the local profile, as a maintainer uses them: set from the CLI (value on
 * stdin), seen by the running app after the automatic restart, never in the image, never in plain text
 * in Redis or on podman's command line, and out of reach of another tool's token.
 */
const repoRoot = path.resolve(import.meta.dirname, "..");
const TOOL = "env-py";
/** Unique per run, so finding it anywhere can only mean it leaked from this test. */
const SECRET = `s3cret-${randomBytes(12).toString("hex")}`;
const SECOND = `second-${randomBytes(12).toString("hex")}`;

let home: string;
let server: RunningServer;
let port: number;
let redisServer: Awaited<ReturnType<typeof startRedis>>;
let tool: { name: string; token: string; git_url: string };
let other: { name: string; token: string };

const client = clientOf(() => server);
const api = client.request;
// The tool's own token: with one tool visible, the CLI needs no --tool.
const cli = (args: string[], input?: string) =>
  client.cli(args, { token: tool.token, tool: "", input: input ?? "" });

interface ReleaseRow {
  id: string;
  status: string;
  reason?: string;
  image_digest: string;
  image: string;
  trigger: { kind: string };
}

async function releaseSettled(releaseId: string): Promise<ReleaseRow> {
  return waitFor(
    `release ${releaseId}`,
    async () => {
      const { body } = await api(`/api/v1/tools/${TOOL}/deployments`);
      const r = (body as ReleaseRow[]).find((x) => x.id === releaseId);
      return r && r.status !== "deploying" ? r : undefined;
    },
    120_000,
  );
}

function releaseIdFrom(output: string): string {
  const m = /as release (\w+)/.exec(output);
  if (!m) throw new Error(`no release id in:\n${output}`);
  return m[1]!;
}

/** Polls the app through the front proxy while `change` runs; counts failures and bodies seen. */
async function pollDuring(change: () => Promise<void>) {
  let polling = true;
  let failures = 0;
  const seen = new Map<string, number>();
  const poller = (async () => {
    while (polling) {
      try {
        const r = await viaProxy(port, TOOL);
        if (r.status !== 200) failures++;
        seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
      } catch {
        failures++;
      }
    }
  })();
  try {
    await change();
  } finally {
    polling = false;
    await poller;
  }
  return { failures, seen };
}

const appPy = pythonServer(`200, os.environ.get("GREETING", "unset").encode()`);

beforeAll(async () => {
  redisServer = await startRedis();
  ({ server, port, home } = await startLocalServer({
    name: "envvars",
    env: { REDIS_URL: redisServer.url, SLIPWAY_HEALTH_TIMEOUT_S: "20" },
  }));
  tool = (await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name: TOOL }) })).body as {
    name: string;
    token: string;
    git_url: string;
  };
  other = (await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name: "env-other" }) }))
    .body as { name: string; token: string };
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await removeToolContainers(TOOL);
  await redisServer?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("environment variables of a running tool", () => {
  let firstRelease: ReleaseRow;

  it("a variable set before the first deploy waits for it; the deployed app sees it", async () => {
    const created = await cli(["envvars", "create", "GREETING"], `${SECRET}\n`);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain("GREETING created; it takes effect when the tool is next deployed");

    const repo = await gitRepo({ "app.py": appPy });
    const out = await git(repo.dir, [
      "push",
      tool.git_url.replace("http://", `http://u:${tool.token}@`),
      "main",
    ]);
    const buildId = /build (\w+) queued/.exec(out)?.[1];
    expect(buildId, out).toBeDefined();
    const build = await waitFor(
      "build",
      async () => {
        const { body } = await api(`/api/v1/builds/${buildId}`);
        const b = body as { status: string; release_id: string | null };
        return ["success", "failure", "cancelled"].includes(b.status) ? b : undefined;
      },
      600_000,
      500,
    );
    expect(build.status, JSON.stringify(build)).toBe("success");
    firstRelease = await releaseSettled(build.release_id!);
    expect(firstRelease.status, JSON.stringify(firstRelease)).toBe("live");
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: SECRET });
  });

  it("changing it restarts the app with the new value, with no failed request", async () => {
    let releaseId = "";
    const { failures, seen } = await pollDuring(async () => {
      const changed = await cli(["envvars", "create", "GREETING"], `${SECOND}\n`);
      expect(changed.code, changed.stderr).toBe(0);
      expect(changed.stdout).toMatch(/GREETING updated; restarting the tool as release \w+/);
      releaseId = releaseIdFrom(changed.stdout);
      expect((await releaseSettled(releaseId)).status).toBe("live");
      await waitFor(
        "new value served",
        async () => ((await viaProxy(port, TOOL)).body === SECOND ? true : undefined),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 1500));
    });
    expect(failures).toBe(0);
    expect(seen.get(SECRET)).toBeGreaterThan(0);
    expect(seen.get(SECOND)).toBeGreaterThan(0);
    expect([...seen.keys()].sort()).toEqual([SECRET, SECOND].sort());

    // The restart is a release of the same image, and says why it happened.
    const release = await releaseSettled(releaseId);
    expect(release.image_digest).toBe(firstRelease.image_digest);
    expect(release.trigger.kind).toBe("envvars");
    expect(release.reason).toBe("restart: environment variable GREETING updated");
    const listed = await cli(["deployment", "list"]);
    expect(listed.stdout).toContain(`${releaseId}  live`);
  });

  it("lists names with values hidden unless asked, and shows one value", async () => {
    const hidden = await cli(["envvars", "list"]);
    expect(hidden.code, hidden.stderr).toBe(0);
    expect(hidden.stdout).toMatch(/^GREETING\s+\*\*\*$/m);
    expect(hidden.stdout).not.toContain(SECOND);
    const json = JSON.parse((await cli(["envvars", "list", "--json"])).stdout) as unknown;
    expect(json).toEqual([{ name: "GREETING", value: null }]);
    expect((await cli(["envvars", "list", "--show-values"])).stdout).toMatch(
      new RegExp(`^GREETING\\s+${SECOND}$`, "m"),
    );
    expect((await cli(["envvars", "show", "GREETING"])).stdout).toBe(`GREETING=${SECOND}\n`);
  });

  it("keeps the value out of the image, out of podman's command line and out of Redis in plain text", async () => {
    const running = (
      await podman(["ps", "-q", "--filter", `label=io.slipway.tool=${TOOL}`], { repoRoot })
    ).stdout.trim();
    expect(running).not.toBe("");
    const container = (await podman(["inspect", running], { repoRoot })).stdout;
    // CreateCommand is the podman command line, as `ps` showed it while podman ran.
    const createCommand = (JSON.parse(container) as { Config: { CreateCommand: string[] } }[])[0]!.Config
      .CreateCommand;
    expect(createCommand).toContain("--env-file");
    expect(createCommand.join(" ")).not.toContain(SECOND);
    // …while the process does get it.
    expect(container).toContain(`GREETING=${SECOND}`);

    const image = `${firstRelease.image.replace(/:[^/:]+$/, "")}@${firstRelease.image_digest}`;
    const imageJson = (await podman(["image", "inspect", image], { repoRoot })).stdout;
    expect(imageJson).toContain(firstRelease.image_digest);
    expect(imageJson).not.toContain(SECRET);
    expect(imageJson).not.toContain(SECOND);

    const dump = await redisText(redisServer.url);
    expect(dump).toContain("slipway:envvars:env-py");
    expect(dump).not.toContain(SECRET);
    expect(dump).not.toContain(SECOND);
  });

  it("refuses other tools' tokens and no token", async () => {
    const routes: [string, string, object?][] = [
      ["GET", `/api/v1/tools/${TOOL}/envvars?show_values=true`],
      ["GET", `/api/v1/tools/${TOOL}/envvars/GREETING`],
      ["PUT", `/api/v1/tools/${TOOL}/envvars/GREETING`, { value: "stolen" }],
      ["DELETE", `/api/v1/tools/${TOOL}/envvars/GREETING`],
    ];
    for (const [method, route, body] of routes) {
      const res = await api(route, { method, body: body && JSON.stringify(body) }, other.token);
      expect(res.status, `${method} ${route}`).toBe(403);
      expect(JSON.stringify(res.body)).not.toContain(SECOND);
      const anon = await fetch(`${server.url}${route}`, { method });
      expect(anon.status).toBe(401);
    }
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: SECOND });
  });

  it("rejects reserved and malformed names and oversized values with a clear error, changing nothing", async () => {
    const before = ((await api(`/api/v1/tools/${TOOL}/deployments`)).body as ReleaseRow[]).length;
    const reserved = await cli(["envvars", "create", "PORT", "9000"]);
    expect(reserved.code).toBe(1);
    expect(reserved.stderr).toContain("PORT is set by Slipway");
    const lower = await cli(["envvars", "create", "greeting", "x"]);
    expect(lower.stderr).toContain("did you mean GREETING?");
    const big = await api(`/api/v1/tools/${TOOL}/envvars/BIG`, {
      method: "PUT",
      body: JSON.stringify({ value: "x".repeat(32 * 1024 + 1) }),
    });
    expect(big.status).toBe(400);
    expect(JSON.stringify(big.body)).toContain("at most 32768 bytes");
    expect(((await api(`/api/v1/tools/${TOOL}/deployments`)).body as ReleaseRow[]).length).toBe(before);
    expect((await cli(["envvars", "list", "--json"])).stdout).not.toContain("BIG");
  });

  it("deleting it restarts the app without it", async () => {
    const deleted = await cli(["envvars", "delete", "GREETING"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await releaseSettled(releaseIdFrom(deleted.stdout))).status).toBe("live");
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "unset" });
    expect((await cli(["envvars", "list"])).stdout).toBe("no environment variables\n");
    const again = await cli(["envvars", "delete", "GREETING"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("has no environment variable GREETING");
  });
});

/** Every key and value in Redis as text, read type by type (an RDB file could compress strings). */
async function redisText(url: string): Promise<string> {
  const redis = new Redis(url);
  try {
    const parts: string[] = [];
    for (const key of await redis.keys("*")) {
      parts.push(key);
      const type = await redis.type(key);
      if (type === "string") parts.push((await redis.get(key)) ?? "");
      else if (type === "hash") parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === "list") parts.push(...(await redis.lrange(key, 0, -1)));
      else if (type === "set") parts.push(...(await redis.smembers(key)));
      else if (type === "zset") parts.push(...(await redis.zrange(key, 0, -1)));
      else if (type === "stream") parts.push(JSON.stringify(await redis.xrange(key, "-", "+")));
    }
    return parts.join("\n");
  } finally {
    await redis.quit();
  }
}
