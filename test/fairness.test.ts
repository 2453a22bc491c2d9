import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobQueue, type Workers } from "../services/adapters/queue/bullmq.js";
import { memoryLogger } from "../services/platform/logger.js";
import { startRedis } from "./helpers/redis.js";

/**
 * Build scheduling on real Redis and real BullMQ workers, with a fake build runner that records the
 * order builds start in and holds each one until the test lets it finish. No podman.
 */
let redis: Awaited<ReturnType<typeof startRedis>>;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

async function until(what: string, ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A build runner that starts builds when the workers say so and finishes them when the test says so. */
function heldRunner() {
  const started: { id: string; tool: string }[] = [];
  const running = new Map<string, { tool: string; finish: () => void }>();
  const runs = new Map<string, number>();
  let maxRunning = 0;
  const maxRunningPerTool = new Map<string, number>();
  let autoFinish = false;
  const run = async (job: { build_id: string; tool?: string | undefined }) => {
    const tool = job.tool ?? "?";
    started.push({ id: job.build_id, tool });
    runs.set(job.build_id, (runs.get(job.build_id) ?? 0) + 1);
    await new Promise<void>((resolve) => {
      running.set(job.build_id, { tool, finish: resolve });
      maxRunning = Math.max(maxRunning, running.size);
      const ofTool = [...running.values()].filter((r) => r.tool === tool).length;
      maxRunningPerTool.set(tool, Math.max(maxRunningPerTool.get(tool) ?? 0, ofTool));
      if (autoFinish) setImmediate(resolve);
    });
    running.delete(job.build_id);
  };
  return {
    run,
    started,
    running,
    runs,
    get maxRunning() {
      return maxRunning;
    },
    maxRunningPerTool,
    finishAll() {
      autoFinish = true;
      for (const r of running.values()) r.finish();
    },
  };
}

describe("fair build scheduling", () => {
  it("starts two other tools' builds within one slot while one tool has 20 queued, and runs each build once", async () => {
    const queue = JobQueue.create(redis.url, "fair1");
    const runner = heldRunner();
    let workers: Workers | undefined;
    try {
      // Global concurrency 2, per-tool cap 1: the settings under test.
      workers = queue.startWorkers(
        redis.url,
        { build: (job) => runner.run(job) },
        { build: 2 },
        memoryLogger(),
        {
          perGroup: { build: 1 },
        },
      );
      // Tool A floods: 20 distinct builds (distinct ids, as coalescing would keep only one per component).
      for (let i = 0; i < 20; i++)
        await queue.enqueue("build", { build_id: `a-${i}`, tool: "alpha" }, `a-${i}`);
      await until("alpha's first build to start", () => runner.started.length >= 1);
      await queue.enqueue("build", { build_id: "b-0", tool: "bravo" }, "b-0");
      await queue.enqueue("build", { build_id: "c-0", tool: "charlie" }, "c-0");
      // Both slots busy: one with alpha's first build, the other with bravo's.
      await until("two builds running", () => runner.running.size === 2);
      expect([...runner.running.values()].map((r) => r.tool).sort()).toEqual(["alpha", "bravo"]);

      // Free alpha's slot: charlie's build is next, not alpha's second.
      runner.running.get("a-0")!.finish();
      await until("a third build to start", () => runner.started.length >= 3);
      runner.finishAll();
      await until("all 22 builds to run", () => runner.runs.size === 22, 60_000);
      // Give a wrongly repeated run the chance to show up before counting.
      await new Promise((r) => setTimeout(r, 300));

      const order = runner.started.map((s) => s.id);
      console.log(`fairness start order: ${order.join(" ")}`);
      const secondAlpha = order.indexOf("a-1");
      expect(order.indexOf("b-0")).toBeLessThan(secondAlpha);
      expect(order.indexOf("c-0")).toBeLessThan(secondAlpha);
      expect(order.slice(0, 3)).toEqual(["a-0", "b-0", "c-0"]);
      expect(runner.maxRunningPerTool.get("alpha")).toBe(1);
      expect(runner.maxRunning).toBe(2);
      expect([...runner.runs.values()].every((n) => n === 1)).toBe(true);
      const counts = await queue.counts("build");
      expect(counts).toMatchObject({ waiting: 0, active: 0, delayed: 0, completed: 22 });
    } finally {
      await workers?.close();
      await queue.close();
    }
  });

  it("allows more than one running build of a tool when the per-tool cap says so", async () => {
    const queue = JobQueue.create(redis.url, "fair2");
    const runner = heldRunner();
    let workers: Workers | undefined;
    try {
      workers = queue.startWorkers(
        redis.url,
        { build: (job) => runner.run(job) },
        { build: 3 },
        memoryLogger(),
        {
          perGroup: { build: 2 },
        },
      );
      for (let i = 0; i < 6; i++)
        await queue.enqueue("build", { build_id: `a-${i}`, tool: "alpha" }, `a-${i}`);
      await until("two builds running", () => runner.running.size === 2);
      // The third slot stays free: alpha is at its cap of two.
      await new Promise((r) => setTimeout(r, 500));
      expect(runner.running.size).toBe(2);
      await queue.enqueue("build", { build_id: "b-0", tool: "bravo" }, "b-0");
      await until("bravo's build to start", () => runner.running.has("b-0"));
      runner.finishAll();
      await until("all 7 builds to run", () => runner.runs.size === 7, 60_000);
      expect(runner.maxRunningPerTool.get("alpha")).toBe(2);
      expect([...runner.runs.values()].every((n) => n === 1)).toBe(true);
    } finally {
      await workers?.close();
      await queue.close();
    }
  });

  it("orders a backlog queued before the builders start by each tool's queue depth", async () => {
    const queue = JobQueue.create(redis.url, "fair4");
    const runner = heldRunner();
    let workers: Workers | undefined;
    try {
      for (let i = 0; i < 10; i++)
        await queue.enqueue("build", { build_id: `a-${i}`, tool: "alpha" }, `a-${i}`);
      await queue.enqueue("build", { build_id: "b-0", tool: "bravo" }, "b-0");
      await queue.enqueue("build", { build_id: "c-0", tool: "charlie" }, "c-0");
      // Alpha may run two at once here, so only queue order can put bravo and charlie first.
      workers = queue.startWorkers(
        redis.url,
        { build: (job) => runner.run(job) },
        { build: 3 },
        memoryLogger(),
        {
          perGroup: { build: 2 },
        },
      );
      await until("three builds running", () => runner.running.size === 3);
      expect(runner.started.map((s) => s.id).sort()).toEqual(["a-0", "b-0", "c-0"]);
      runner.finishAll();
      await until("all 12 builds to run", () => runner.runs.size === 12, 60_000);
    } finally {
      await workers?.close();
      await queue.close();
    }
  });

  it("frees a crashed worker's tool slot when its lease expires", async () => {
    const queue = JobQueue.create(redis.url, "fair3");
    const runner = heldRunner();
    let crashed: Workers | undefined;
    let workers: Workers | undefined;
    try {
      // A worker that takes alpha's build and then never finishes nor renews (its process "died").
      let taken = false;
      crashed = queue.startWorkers(
        redis.url,
        {
          build: async (_job, ctx) => {
            taken = true;
            // Stuck until the test closes it; its lease is what matters.
            await new Promise((r) => ctx.signal.addEventListener("abort", r));
          },
        },
        { build: 1 },
        memoryLogger(),
        { perGroup: { build: 1 }, leaseMs: 60_000 },
      );
      await queue.enqueue("build", { build_id: "a-0", tool: "alpha" }, "a-0");
      await until("the first build to be taken", () => taken);
      // The lease is held for a minute; simulate the crash by letting the key expire now.
      const { Redis } = await import("ioredis");
      const r = new Redis(redis.url);
      const keys = await r.keys("fair3:slipway-builds:fair:alpha:slot:*");
      expect(keys).toHaveLength(1);
      await r.pexpire(keys[0]!, 1);
      await r.quit();
      workers = queue.startWorkers(
        redis.url,
        { build: (job) => runner.run(job) },
        { build: 1 },
        memoryLogger(),
        {
          perGroup: { build: 1 },
        },
      );
      await queue.enqueue("build", { build_id: "a-1", tool: "alpha" }, "a-1");
      await until("alpha's next build to start on the healthy worker", () => runner.running.has("a-1"));
      runner.finishAll();
    } finally {
      await workers?.close();
      await crashed?.close();
      await queue.close();
    }
  });
});
