/**
 * `npm run bench -- scale`: Slipway with many tools, in one process on a redis-server of its own. Prints
 * the job runner's tick time with 10,000 scheduled jobs (one per tool, 2 of them due) and the latency of
 * a first page of `GET /api/v1/tools` with 5,000 tools. No podman, no builds: job processes are stand-ins.
 */
import type { Server } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { JobQueue } from "../services/adapters/queue/bullmq.js";
import { RedisServer } from "../services/adapters/redis/server.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import { BuildControl } from "../services/domain/pipeline/build-control.js";
import { TriggerService } from "../services/domain/pipeline/triggers.js";
import type { JobDefinition } from "../services/domain/jobs/job.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../services/domain/jobs/runner.js";
import type { JobsRuntime } from "../services/ports/jobs-runtime.js";
import { ToolService } from "../services/domain/tools/tool-service.js";
import { CryptoBox } from "../services/platform/crypto-box.js";
import { memoryLogger } from "../services/platform/logger.js";
import { hashSecret } from "../services/platform/secrets.js";
import { apiRouter } from "../services/roles/http/api.js";
import { createApp } from "../services/roles/http/app.js";

const JOBS = 10_000;
const TOOLS = 5_000;
const ROUNDS = 20;

function line(name: string, values: number[], unit: string): void {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? NaN;
  process.stdout.write(
    `  ${name.padEnd(52)} p50 ${at(0.5).toFixed(2)} ${unit}  p95 ${at(0.95).toFixed(2)} ${unit}  (${values.length} rounds)\n`,
  );
}

/** A one-off job definition (`fields` change it) of an image that stand-in runtimes never look at. */
export function standInJob(
  tool: string,
  name: string,
  at: Date,
  fields: Partial<JobDefinition> = {},
): JobDefinition {
  return {
    tool,
    name,
    type: "one-off",
    command: "x",
    image: "img",
    image_name: undefined,
    release_id: "r",
    schedule: undefined,
    cron: undefined,
    retry: 0,
    timeout_s: undefined,
    memory_mb: undefined,
    source: "api",
    revision: 1,
    extra: {},
    created_at: at.toISOString(),
    updated_at: at.toISOString(),
    ...fields,
  };
}

async function tickTime(redisUrl: string): Promise<void> {
  const redis = new Redis(redisUrl);
  const store = RedisJobsStore.create(redis);
  const runtime: JobsRuntime = {
    removeLeftovers: () => Promise.resolve(0),
    start: (spec) =>
      Promise.resolve({
        id: spec.runId,
        exited: Promise.resolve({ exitCode: 0 }),
        kill: () => Promise.resolve(),
      }),
  };
  let now = new Date("2026-03-01T10:00:30Z");
  const runner = new JobRunner({
    store,
    runtime,
    envFor: () => Promise.resolve({}),
    logger: memoryLogger(),
    options: { ...DEFAULT_RUNNER_OPTIONS, owner: "bench" },
    now: () => now,
  });
  for (let i = 0; i < JOBS; i++) {
    // Two per-minute jobs; the rest fire daily at noon, far from the measured minutes.
    const cron = i % (JOBS / 2) === 0 ? "* * * * *" : "0 12 * * *";
    await store.putJob(standInJob(`scale-${i}`, "report", now, { type: "scheduled", schedule: cron, cron }));
  }
  // New jobs wait in the schedule with time 0 until a tick computes their next time, DUE_PER_TICK a tick.
  let t = performance.now();
  let ticks = 0;
  for (; (await store.dueSchedules(new Date(0), 1)).length > 0; ticks++) await runner.tick();
  process.stdout.write(
    `  learning ${JOBS} new schedules: ${ticks} ticks, ${(performance.now() - t).toFixed(0)} ms of work\n`,
  );
  const idle: number[] = [];
  const due: number[] = [];
  for (let minute = 1; minute <= ROUNDS; minute++) {
    // 5 s past the minute the 2 per-minute jobs are due; 30 s later nothing is.
    now = new Date(Date.parse("2026-03-01T10:00:05Z") + minute * 60_000);
    t = performance.now();
    await runner.tick();
    due.push(performance.now() - t);
    now = new Date(now.getTime() + 30_000);
    t = performance.now();
    await runner.tick();
    idle.push(performance.now() - t);
  }
  line(`runner tick, ${JOBS} scheduled jobs, none due`, idle, "ms");
  line(`runner tick, ${JOBS} scheduled jobs, 2 due`, due, "ms");
  await runner.close();
  redis.disconnect();
}

async function listLatency(redisUrl: string): Promise<void> {
  const logger = memoryLogger();
  const prefix = `scale${randomBytes(3).toString("hex")}`;
  const store = RedisStore.create(redisUrl, { queuePrefix: prefix });
  const queue = JobQueue.create(redisUrl, prefix);
  const urls = { publicUrl: "http://127.0.0.1:8080", webUrl: (t: string) => `http://${t}.localhost:8080/` };
  const logsRedis = new Redis(redisUrl);
  const adminToken = `sla_${randomBytes(16).toString("hex")}`;
  const created = new Date("2026-01-01T00:00:00Z").getTime();
  for (let i = 0; i < TOOLS; i++) {
    await store.createTool({
      name: `tool-${i}`,
      created_at: new Date(created + i * 1000).toISOString(),
      deploy: { branches: [], tags: [] },
      token_hash: "x",
      webhook_secret_hash: "x",
      redeploy_token_hash: "x",
    });
  }
  const app = createApp({
    logger,
    rawRouters: [],
    api: apiRouter({
      store,
      tools: new ToolService(store, urls, CryptoBox.fromKey(randomBytes(32))),
      triggers: new TriggerService(store, logger),
      builds: new BuildControl(store, queue),
      logs: RedisBuildLogs.create(logsRedis),
      refs: { resolve: () => Promise.resolve(undefined) },
      adminTokenHash: hashSecret(adminToken),
      urls,
    }),
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const address = server.address();
  const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const get = async (route: string) => {
    const t = performance.now();
    const res = await fetch(`${base}${route}`, { headers: { authorization: `Bearer ${adminToken}` } });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`GET ${route}: HTTP ${res.status}`);
    return performance.now() - t;
  };
  const first: number[] = [];
  const deep: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    first.push(await get("/api/v1/tools"));
    deep.push(await get(`/api/v1/tools?limit=100&cursor=${TOOLS - 100}`));
  }
  line(`GET /api/v1/tools, ${TOOLS} tools, first page of 100`, first, "ms");
  line(`GET /api/v1/tools, ${TOOLS} tools, last page of 100`, deep, "ms");
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await queue.close();
  await store.close();
  logsRedis.disconnect();
}

/** Both figures, each on a fresh redis-server removed afterwards. */
export async function scaleBench(): Promise<void> {
  process.stdout.write(`scale: ${JOBS} scheduled jobs, ${TOOLS} tools\n`);
  for (const measure of [tickTime, listLatency]) {
    const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-bench-scale-"));
    const redis = await RedisServer.start(dir, 0);
    try {
      await measure(redis.url);
    } finally {
      await redis.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
}
