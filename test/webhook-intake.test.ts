import { readFileSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BuildOutbox } from "../services/adapters/queue/build-outbox.js";
import { JobQueue } from "../services/adapters/queue/bullmq.js";
import { RedisStore, buildOutboxKeys } from "../services/adapters/store/redis-store.js";
import { TriggerService } from "../services/domain/pipeline/triggers.js";
import { ToolService } from "../services/domain/tools/tool-service.js";
import { memoryLogger } from "../services/platform/logger.js";
import { hashSecret } from "../services/platform/secrets.js";
import { startHttpApp } from "./helpers/http-app.js";
import { startRedis } from "./helpers/redis.js";

/**
 * The one-script intake (StateStore.intakePush) and the outbox that moves builds into BullMQ, on real
 * Redis and real BullMQ: what GitLab and a tool maintainer see when deliveries race or a process dies.
 */
const pushHook = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "fixtures", "gitlab", "gitlab-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;

let redis: Awaited<ReturnType<typeof startRedis>>;
let app: Awaited<ReturnType<typeof startHttpApp>>;

beforeAll(async () => {
  redis = await startRedis();
  app = await startHttpApp(redis.url);
});
afterAll(async () => {
  await app?.close();
  await redis?.stop();
});

type Answer = { status: string; build_id?: string; redelivery?: boolean; reason: string };

async function deliver(tool: { name: string; webhook_secret: string }, sha: string, key?: string) {
  const res = await fetch(`${app.url}/hooks/gitlab/${tool.name}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": tool.webhook_secret,
      ...(key ? { "idempotency-key": key } : {}),
    },
    body: JSON.stringify({ ...pushHook, checkout_sha: sha, after: sha }),
  });
  return { status: res.status, body: (await res.json()) as Answer };
}

/** Jobs waiting in the app's build queue (all tools of this file), once the outbox is empty. */
async function waiting() {
  await app.queued();
  return (await app.queue.counts("build")).waiting ?? 0;
}

const sha = (n: number) => n.toString(16).padStart(40, "e");

describe("webhook intake under concurrent deliveries", () => {
  it("queues a commit once when 20 deliveries of it arrive at the same moment", async () => {
    const tool = await app.createTool("race-commit");
    const before = await waiting();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => deliver(tool, sha(1), `k-${i}`)));
    const queued = answers.filter((a) => a.status === 202);
    expect(queued).toHaveLength(1);
    const id = queued[0]!.body.build_id;
    for (const a of answers.filter((x) => x.status !== 202)) {
      expect(a).toMatchObject({ status: 200, body: { status: "duplicate", build_id: id } });
    }
    expect(await app.store.listBuilds(tool.name, 100)).toHaveLength(1);
    expect(await waiting()).toBe(before + 1);
  });

  it("answers 20 simultaneous redeliveries of one delivery as the first, with one build", async () => {
    const tool = await app.createTool("race-key");
    const answers = await Promise.all(Array.from({ length: 20 }, () => deliver(tool, sha(2), "same-key")));
    expect(answers.filter((a) => a.status === 202)).toHaveLength(1);
    const id = answers.find((a) => a.status === 202)!.body.build_id;
    const again = answers.filter((a) => a.status !== 202);
    expect(again).toHaveLength(19);
    for (const a of again)
      expect(a.body).toMatchObject({ status: "duplicate", build_id: id, redelivery: true });
    expect(await app.store.listBuilds(tool.name, 100)).toHaveLength(1);
  });

  it("leaves one build waiting when 20 commits are pushed at once; the others say what superseded them", async () => {
    const tool = await app.createTool("race-supersede");
    const before = await waiting();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => deliver(tool, sha(100 + i))));
    expect(answers.every((a) => a.status === 202)).toBe(true);
    const builds = await app.store.listBuilds(tool.name, 100);
    expect(builds).toHaveLength(20);
    const pending = builds.filter((b) => b.status === "pending");
    expect(pending).toHaveLength(1);
    const ids = new Set(builds.map((b) => b.id));
    for (const b of builds.filter((x) => x.status !== "pending")) {
      expect(b.status).toBe("superseded");
      expect(b.finished_at).toBeDefined();
      // Named after a build of the same tool that exists.
      const by = /superseded by build (\w+)/.exec(b.reason ?? "")?.[1];
      expect(by !== undefined && ids.has(by)).toBe(true);
    }
    expect(await waiting()).toBe(before + 1);
    // A superseded commit is free again: pushing it once more queues it.
    const superseded = builds.find((b) => b.status === "superseded")!;
    const again = await deliver(tool, superseded.commit);
    expect(again.status).toBe(202);
  });
});

describe("tool records kept for webhook deliveries", () => {
  it("refuse a rotated secret on the very next delivery, and follow an edited deploy policy", async () => {
    const tool = await app.createTool("rotating");
    expect((await deliver(tool, sha(20))).status).toBe(202);
    await app.store.replaceSecretHash(tool.name, "webhook", hashSecret("slw_new-secret"));
    expect((await deliver(tool, sha(21))).status).toBe(401);
    const rotated = { name: tool.name, webhook_secret: "slw_new-secret" };
    expect((await deliver(rotated, sha(22))).status).toBe(202);
    await app.store.updateTool(tool.name, { deploy: { branches: ["release"], tags: [] } });
    expect((await deliver(rotated, sha(23))).body).toMatchObject({ status: "ignored" });
  });

  it("refuse a secret rotated by another process within moments", async () => {
    const tool = await app.createTool("rotated-elsewhere");
    expect((await deliver(tool, sha(30))).status).toBe(202);
    const elsewhere = RedisStore.create(redis.url);
    try {
      await elsewhere.replaceSecretHash(tool.name, "webhook", hashSecret("slw_other"));
      let status = 0;
      for (let i = 0; i < 100 && status !== 401; i++) {
        status = (await deliver(tool, sha(31 + i))).status;
        if (status !== 401) await new Promise((r) => setTimeout(r, 20));
      }
      expect(status).toBe(401);
    } finally {
      await elsewhere.close();
    }
  });
});

describe("builds on their way to the queue", () => {
  function parts(prefix: string) {
    const store = RedisStore.create(redis.url, { queuePrefix: prefix });
    const queue = JobQueue.create(redis.url, prefix);
    const tools = new ToolService(store, { publicUrl: "http://s", webUrl: (t) => `http://${t}.localhost/` });
    const triggers = new TriggerService(store, memoryLogger());
    const push = async (name: string, commit: string) =>
      triggers.push({
        tool: (await store.getTool(name))!,
        ref: "refs/heads/master",
        commit,
        sourceUrl: "http://example.com/x.git",
        defaultBranch: "master",
        trigger: { kind: "git_push", ref: "refs/heads/master" },
      });
    return { store, queue, tools, push, close: async () => (await queue.close(), await store.close()) };
  }

  it("reach the queue after a crash: builds accepted while no mover ran are queued by the next one", async () => {
    const p = parts("crash1");
    try {
      const tool = await p.tools.create("crashed-api");
      const first = await p.push(tool.name, sha(7));
      const other = await p.tools.create("crashed-api-2");
      const second = await p.push(other.name, sha(8));
      expect((await p.queue.counts("build")).waiting).toBe(0);
      const outbox = await BuildOutbox.start(redis.url, p.queue, memoryLogger(), "crash1");
      await outbox.drained();
      await outbox.close();
      const counts = await p.queue.counts("build");
      expect(counts.waiting).toBe(2);
      expect(first.status === "queued" && second.status === "queued").toBe(true);
    } finally {
      await p.close();
    }
  });

  it("are queued once when a mover died after taking them and another redoes its round", async () => {
    const p = parts("crash2");
    const conn = new Redis(redis.url);
    try {
      const tool = await p.tools.create("half-moved");
      const queued = await p.push(tool.name, sha(9));
      const keys = buildOutboxKeys("crash2");
      // What a mover that died mid-round leaves: ids taken, one already in BullMQ, the list not trimmed.
      const id = (queued as { build_id: string }).build_id;
      await conn.srem(keys.unmoved, id);
      await p.queue.enqueue("build", { build_id: id, tool: tool.name }, id);
      const outbox = await BuildOutbox.start(redis.url, p.queue, memoryLogger(), "crash2");
      await outbox.drained();
      await outbox.close();
      expect((await p.queue.counts("build")).waiting).toBe(1);
      expect(await conn.llen(keys.list)).toBe(0);
    } finally {
      await conn.quit();
      await p.close();
    }
  });

  it("lose no build when a slow mover's lock passed to another mover during its round", async () => {
    const p = parts("takeover");
    const conn = new Redis(redis.url);
    const keys = buildOutboxKeys("takeover");
    try {
      const a = await p.tools.create("slow-mover-a");
      const b = await p.tools.create("slow-mover-b");
      const first = (await p.push(a.name, sha(13))) as { build_id: string };
      let second: { build_id: string } | undefined;
      // While this mover enqueues, its lock expires and another mover does the same round: it takes the
      // lock, moves the same entry and trims it, and meanwhile another push lands behind it.
      const queue = {
        enqueue: async (...args: Parameters<JobQueue["enqueue"]>) => {
          if (!second) {
            await conn.set(`${keys.list}:mover`, "another-mover", "PX", 60_000);
            second = (await p.push(b.name, sha(14))) as { build_id: string };
            await p.queue.enqueue("build", { build_id: first.build_id, tool: a.name }, first.build_id);
            await conn.ltrim(keys.list, 1, -1);
            await conn.del(`${keys.list}:mover`);
          }
          return p.queue.enqueue(...args);
        },
        removeWaiting: (...args: Parameters<JobQueue["removeWaiting"]>) => p.queue.removeWaiting(...args),
      } as unknown as JobQueue;
      const outbox = await BuildOutbox.start(redis.url, queue, memoryLogger(), "takeover");
      await outbox.drained();
      await outbox.close();
      const jobs = await p.queue.counts("build");
      expect(jobs.waiting).toBe(2);
      expect(await conn.llen(keys.list)).toBe(0);
      expect(second).toBeDefined();
    } finally {
      await conn.quit();
      await p.close();
    }
  });

  it("never start once superseded, and a running build is not superseded by a newer push", async () => {
    const p = parts("start1");
    try {
      const tool = await p.tools.create("start-race");
      const a = (await p.push(tool.name, sha(10))) as { build_id: string };
      const b = (await p.push(tool.name, sha(11))) as { build_id: string };
      // a was superseded while it waited: a builder that dequeues it anyway must not run it.
      expect(await p.store.startBuild(a.build_id, { status: "running" })).toBeUndefined();
      expect(await p.store.getBuild(a.build_id)).toMatchObject({ status: "superseded" });
      // b starts; a newer push then waits beside it instead of replacing it.
      expect(await p.store.startBuild(b.build_id, { status: "running" })).toMatchObject({
        status: "running",
      });
      const c = (await p.push(tool.name, sha(12))) as { build_id: string };
      expect(await p.store.getBuild(b.build_id)).toMatchObject({ status: "running" });
      expect(await p.store.getBuild(c.build_id)).toMatchObject({ status: "pending" });
    } finally {
      await p.close();
    }
  });

  it("are taken off the queue when superseded after they reached it", async () => {
    const p = parts("late1");
    const outbox = await BuildOutbox.start(redis.url, p.queue, memoryLogger(), "late1");
    try {
      const tool = await p.tools.create("late-supersede");
      await p.push(tool.name, sha(13));
      await outbox.drained();
      expect((await p.queue.counts("build")).waiting).toBe(1);
      const newer = (await p.push(tool.name, sha(14))) as { build_id: string };
      await outbox.drained();
      const counts = await p.queue.counts("build");
      expect(counts.waiting).toBe(1);
      expect(await p.queue.removeWaiting("build", newer.build_id)).toBe(true);
    } finally {
      await outbox.close();
      await p.close();
    }
  });
});
