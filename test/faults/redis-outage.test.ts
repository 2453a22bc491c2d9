import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { QUEUE_OF } from "../../services/domain/pipeline/queue-jobs.js";
import { freePort } from "../../services/platform/net.js";
import { waitFor } from "../helpers/apps.js";
import { clientOf, startLocalServer, type LocalServer } from "../helpers/local-server.js";
import { startKillableRedis, type KillableRedis } from "../helpers/redis.js";

/**
 * kill -9 of Redis under load, as a flaky machine does it: what GitLab sees while Redis is gone (503
 * with Retry-After, answered at once, never a 500), that Slipway resumes by itself when Redis is back,
 * that every delivery it answered 202 is a build that exists and reaches the build queue, and that
 * SIGTERM still stops the server while Redis is down.
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");
const pushHook = JSON.parse(
  readFileSync(path.join(repoRoot, "test/fixtures/gitlab/gitlab-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;

const TOOLS = 8;
const SENDERS = 6;

let redis: KillableRedis;
let local: LocalServer;
const { api, cli } = clientOf(() => local.server);
let tools: { name: string; webhook_secret: string }[] = [];

beforeAll(async () => {
  redis = await startKillableRedis();
  local = await startLocalServer({
    name: "faults-redis",
    role: "api",
    ready: false,
    env: { REDIS_URL: redis.url },
  });
  tools = await Promise.all(
    Array.from({ length: TOOLS }, (_, i) =>
      api<{ name: string; webhook_secret: string }>("/api/v1/tools", {
        method: "POST",
        body: JSON.stringify({ name: `outage-${i}` }),
      }),
    ),
  );
});
afterAll(async () => {
  await local?.server.close();
  await redis?.stop();
  if (local) await rm(local.home, { recursive: true, force: true });
});

interface Answer {
  tool: string;
  status: number;
  retryAfter: string | null;
  code?: string;
  buildId?: string;
  ms: number;
  /** Sent after Redis was started again. */
  afterRestart: boolean;
}

let commit = 0;
async function deliver(url: string, tool: { name: string; webhook_secret: string }, afterRestart: boolean) {
  const sha = (++commit).toString(16).padStart(40, "a");
  const started = Date.now();
  const res = await fetch(`${url}/hooks/gitlab/${tool.name}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": tool.webhook_secret,
    },
    body: JSON.stringify({ ...pushHook, checkout_sha: sha, after: sha }),
  });
  const body = (await res.json()) as { build_id?: string; error?: { code: string } };
  return {
    tool: tool.name,
    status: res.status,
    retryAfter: res.headers.get("retry-after"),
    code: body.error?.code,
    buildId: body.build_id,
    ms: Date.now() - started,
    afterRestart,
  } satisfies Answer;
}

describe("Redis killed during a webhook burst", () => {
  it("answers 503 with Retry-After while Redis is down, resumes, and queues every build it answered 202", async () => {
    const answers: Answer[] = [];
    let phase: "before" | "down" | "back" | "done" = "before";
    let sent = 0;
    const sender = async () => {
      while (phase !== "done") {
        const afterRestart = phase === "back";
        answers.push(await deliver(local.server.url, tools[sent++ % TOOLS]!, afterRestart));
      }
    };
    const senders = Array.from({ length: SENDERS }, () => sender());
    const count = (f: (a: Answer) => boolean) => answers.filter(f).length;

    await waitFor(
      "deliveries accepted before the kill",
      () => Promise.resolve(count((a) => a.status === 202) >= 30 ? true : undefined),
      60_000,
      20,
    );
    await redis.kill();
    phase = "down";
    const atKill = answers.length;
    // The burst goes on against a server without Redis.
    await waitFor(
      "deliveries answered during the outage",
      () => Promise.resolve(answers.length >= atKill + 40 ? true : undefined),
      120_000,
      20,
    );
    await redis.restart();
    phase = "back";
    await waitFor(
      "deliveries accepted after Redis is back",
      () => Promise.resolve(count((a) => a.afterRestart && a.status === 202) >= 30 ? true : undefined),
      120_000,
      50,
    );
    phase = "done";
    await Promise.all(senders);

    const during = answers.slice(atKill).filter((a) => !a.afterRestart);
    const unavailable = answers.filter((a) => a.status === 503);
    const ms = during.map((a) => a.ms).sort((x, y) => x - y);
    console.log(
      `outage: ${answers.length} deliveries, ${count((a) => a.status === 202)} accepted, ` +
        `${unavailable.length} answered 503; during the outage median ${ms[ms.length >> 1]} ms, ` +
        `max ${ms[ms.length - 1]} ms`,
    );

    // GitLab sees either "accepted" or "try again later", never a server error.
    expect(answers.filter((a) => a.status !== 202 && a.status !== 503)).toEqual([]);
    expect(unavailable.length).toBeGreaterThan(0);
    for (const a of unavailable) {
      expect(a.code).toBe("unavailable");
      expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
    }

    // Every 202 is a build that exists and tells the truth: the newest of each tool waits in the build
    // queue, and an older one is either queued as well or superseded by a newer accepted one.
    const accepted = answers.filter((a) => a.status === 202);
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(QUEUE_OF.build, { connection, prefix: "slipway" });
    try {
      for (const tool of tools) {
        const ids = accepted.filter((a) => a.tool === tool.name).map((a) => a.buildId!);
        const listed = await cli(["build", "list", "--tool", tool.name, "--json"]);
        expect(listed.code, listed.stderr).toBe(0);
        const rows = JSON.parse(listed.stdout) as { id: string; status: string }[];
        const byId = new Map(rows.map((r) => [r.id, r.status]));
        expect(ids.filter((id) => !byId.has(id))).toEqual([]);
        for (const id of ids) expect(["pending", "superseded"]).toContain(byId.get(id));
        const newest = rows[0]!;
        expect(ids).toContain(newest.id);
        expect(newest.status).toBe("pending");
        const pending = ids.filter((id) => byId.get(id) === "pending");
        await waitFor(
          `the pending builds of ${tool.name} in the build queue`,
          async () => {
            const jobs = await Promise.all(pending.map((id) => queue.getJob(id)));
            return jobs.every((j) => j !== undefined) ? true : undefined;
          },
          60_000,
        );
      }
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });
});

describe("SIGTERM while Redis is down", () => {
  let child: ChildProcess | undefined;
  let home: string | undefined;
  afterAll(async () => {
    // Its own process group: the server and the registry it started, nothing else.
    if (child?.pid && child.exitCode === null && child.signalCode === null)
      process.kill(-child.pid, "SIGKILL");
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("stops the server within bounds", async () => {
    await redis.restart();
    home = await mkdtemp(path.join(os.tmpdir(), "slipway-faults-sigterm-"));
    // The deployer role: BullMQ workers, the jobs runner and the web-log follower all hold Redis.
    child = spawn(
      process.execPath,
      [path.join(repoRoot, "dist/services/main.js"), "server", "--role", "deployer"],
      {
        env: {
          ...process.env,
          SLIPWAY_HOME: home,
          SLIPWAY_PORT: String(await freePort()),
          SLIPWAY_REGISTRY_PORT: String(await freePort()),
          SLIPWAY_LOG_LEVEL: "info",
          REDIS_URL: redis.url,
        },
        stdio: ["ignore", "pipe", "inherit"],
        detached: true,
      },
    );
    const exited = new Promise<number | null>((resolve) => child!.once("exit", (code) => resolve(code)));
    // Started in full (its SIGTERM handler installed) once it says so.
    let log = "";
    child.stdout!.on("data", (d: Buffer) => (log += d.toString("utf8")));
    await waitFor(
      "the server to start",
      () => Promise.resolve(log.includes("slipway started") ? true : undefined),
      120_000,
      100,
    );
    await redis.kill();
    // Long enough for every client to notice and start reconnecting.
    await new Promise((r) => setTimeout(r, 2000));
    const signalled = Date.now();
    child.kill("SIGTERM");
    const code = await Promise.race([
      exited,
      new Promise<"still running">((r) => setTimeout(() => r("still running"), 15_000)),
    ]);
    console.log(
      `SIGTERM with Redis down: ${code === "still running" ? "still running after 15 s" : `exited ${code} after ${Date.now() - signalled} ms`}`,
    );
    expect(code).toBe(0);
  });
});
