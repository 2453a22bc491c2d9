/**
 * `npm run bench -- scale`: Slipway at Toolforge's size (3,200 tools, 10,000 jobs) in one process on a
 * redis-server of its own: the HTTP API and webhook receivers, and the job runner with a stand-in runtime
 * (a scheduled run exits at once, a continuous one runs until stopped; no containers). Prints each figure
 * beside its target and writes them to bench/results/latest.json under `scale`, leaving the other
 * sections' figures there. `npm run bench -- scale 30` shortens the runner's measured window to 30 s.
 */
import { spawn } from "node:child_process";
import type { Server } from "node:http";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
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
import { expandSchedule, nextRun } from "../services/domain/jobs/cron.js";
import type { JobDefinition } from "../services/domain/jobs/job.js";
import { JobService } from "../services/domain/jobs/job-service.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../services/domain/jobs/runner.js";
import type { JobsRuntime } from "../services/ports/jobs-runtime.js";
import { ToolService } from "../services/domain/tools/tool-service.js";
import { CryptoBox } from "../services/platform/crypto-box.js";
import { memoryLogger } from "../services/platform/logger.js";
import { freePort, waitForPort } from "../services/platform/net.js";
import { hashSecret } from "../services/platform/secrets.js";
import { apiRouter } from "../services/roles/http/api.js";
import { jobsRouter } from "../services/roles/http/api-jobs.js";
import { createApp } from "../services/roles/http/app.js";
import { forgeReceivers } from "../services/roles/webhooks/forges.js";
import { ToolCache } from "../services/roles/webhooks/tool-cache.js";

const TOOLS = 3_200;
const JOBS = 10_000;
/** Tools given BUILDS builds each, for the build list. */
const BUILD_TOOLS = 20;
const BUILDS = 120;
const DEFAULT_WINDOW_S = 90;
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");

/** A measured value beside its target (and the baseline measured in the same run, where there is one). */
export interface Figure {
  name: string;
  value: number | null;
  unit: string;
  target: string;
  met: boolean | null;
  baseline?: number;
  note?: string;
}

const figures: Figure[] = [];

function record(f: Figure): void {
  figures.push(f);
  const value = f.value === null ? "n/a" : `${round(f.value)} ${f.unit}`;
  const met = f.met === null ? "(info)" : f.met ? "met" : "NOT met";
  process.stdout.write(`  ${f.name.padEnd(46)} ${value.padEnd(14)} target ${f.target.padEnd(12)} ${met}\n`);
  if (f.note) process.stdout.write(`    ${f.note}\n`);
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
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

/**
 * The job mix, by job index: 1 % every minute, 8 % continuous, 22 % daily, the rest hourly (the macros
 * spread over the day or hour as Toolforge does).
 */
function mixed(i: number, at: Date): JobDefinition {
  const tool = `tool-${i % TOOLS}`;
  const name = `job-${Math.floor(i / TOOLS)}`;
  const k = i % 100;
  if (k >= 1 && k <= 8) return standInJob(tool, name, at, { type: "continuous" });
  const schedule = k === 0 ? "* * * * *" : k <= 30 ? "@daily" : "@hourly";
  return standInJob(tool, name, at, {
    type: "scheduled",
    schedule,
    cron: expandSchedule(schedule, tool, name),
  });
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info("memory"))?.[1] ?? NaN);
}

async function inBatches<T>(items: readonly T[], size: number, each: (item: T) => Promise<unknown>) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}

async function measure(redisUrl: string, windowS: number): Promise<void> {
  const logger = memoryLogger();
  const prefix = `scale${randomBytes(3).toString("hex")}`;
  const redis = new Redis(redisUrl);
  const store = RedisStore.create(redisUrl, { queuePrefix: prefix });
  const jobsStore = RedisJobsStore.create(redis);
  const queue = JobQueue.create(redisUrl, prefix);
  const urls = { publicUrl: "http://127.0.0.1:8080", webUrl: (t: string) => `http://${t}.localhost:8080/` };
  const adminToken = `sla_${randomBytes(16).toString("hex")}`;
  const at = new Date();
  const empty = await usedMemory(redis);

  // --- 3,200 tools and 10,000 jobs ---
  let t = performance.now();
  const indexes = Array.from({ length: TOOLS }, (_, i) => i);
  await inBatches(indexes, 100, (i) =>
    store.createTool({
      name: `tool-${i}`,
      created_at: new Date(at.getTime() - (TOOLS - i) * 1000).toISOString(),
      deploy: { branches: ["master"], tags: [] },
      token_hash: hashSecret(`token-${i}`),
      webhook_secret_hash: hashSecret(`hook-${i}`),
      redeploy_token_hash: hashSecret(`redeploy-${i}`),
    }),
  );
  const defs = Array.from({ length: JOBS }, (_, i) => mixed(i, at));
  const crons = new Map(defs.map((d) => [`${d.tool}/${d.name}`, d.cron]));
  await inBatches(defs, 100, (d) => jobsStore.putJob(d));
  process.stdout.write(
    `  created ${TOOLS} tools and ${JOBS} jobs (${defs.filter((d) => d.type === "continuous").length} continuous, ` +
      `${defs.filter((d) => d.cron === "* * * * *").length} every minute, the rest hourly or daily) ` +
      `in ${Math.round(performance.now() - t)} ms\n`,
  );

  // --- the runner, real clock, stand-in processes ---
  const lateness: number[] = [];
  const runtime: JobsRuntime = {
    removeLeftovers: () => Promise.resolve(0),
    start: (spec) => {
      const cron = crons.get(`${spec.tool}/${spec.job}`);
      if (cron) {
        // The fire time this run is for: the last one of its cron at or before now.
        const now = Date.now();
        lateness.push((now - nextRun(cron, new Date(now - 60_000)).getTime()) / 1000);
        return Promise.resolve({
          id: spec.runId,
          exited: Promise.resolve({ exitCode: 0 }),
          kill: () => Promise.resolve(),
        });
      }
      let end!: () => void;
      const exited = new Promise<{ exitCode: number }>((resolve) => (end = () => resolve({ exitCode: 0 })));
      return Promise.resolve({ id: spec.runId, exited, kill: () => Promise.resolve(end()) });
    },
  };
  const runner = new JobRunner({
    store: jobsStore,
    runtime,
    envFor: () => Promise.resolve({}),
    logger,
    options: { ...DEFAULT_RUNNER_OPTIONS, owner: "bench" },
  });
  t = performance.now();
  await runner.start();
  const startMs = performance.now() - t;
  t = performance.now();
  while ((await jobsStore.dueSchedules(new Date(0), 1)).length > 0)
    await new Promise((r) => setTimeout(r, 250));
  record({
    name: "runner start, then learning 10,000 schedules",
    value: (performance.now() - t + startMs) / 1000,
    unit: "s",
    target: "(info)",
    met: null,
    note: `start (index rebuild, lost-run sweep) ${Math.round(startMs)} ms; new schedules are learned 500 a tick`,
  });
  const perTool = (await usedMemory(redis)) - empty;
  record({
    name: "Redis memory per tool with its jobs",
    value: perTool / TOOLS / 1024,
    unit: "KiB",
    target: "<= 20 KiB",
    met: perTool / TOOLS / 1024 <= 20,
    note: `INFO used_memory after creating them and the runner's first pass (statuses, indexes, continuous runs): ${round(perTool / 2 ** 20)} MiB for ${TOOLS} tools, ${JOBS} jobs`,
  });

  lateness.length = 0;
  const cpu = process.cpuUsage();
  t = performance.now();
  await new Promise((r) => setTimeout(r, windowS * 1000));
  const used = process.cpuUsage(cpu);
  const wallMs = performance.now() - t;
  const share = ((used.user + used.system) / 1000 / wallMs) * 100;
  record({
    name: "job runner CPU, 10,000 jobs",
    value: share,
    unit: "% core",
    target: "<= 5 %",
    met: share <= 5,
    note: `process.cpuUsage over ${Math.round(wallMs / 1000)} s with only the runner working (ticks, due runs, their records), user ${Math.round(used.user / 1000)} ms, system ${Math.round(used.system / 1000)} ms`,
  });
  record({
    name: "p99 lateness of due runs",
    value: percentile(lateness, 99),
    unit: "s",
    target: "<= 2 s",
    met: percentile(lateness, 99) <= 2,
    note: `${lateness.length} scheduled runs in the window, p50 ${round(percentile(lateness, 50))} s, max ${round(Math.max(...lateness))} s (a tick every second)`,
  });

  // --- the API and webhooks, with the runner still running ---
  const tools = new ToolService(store, urls, CryptoBox.fromKey(randomBytes(32)));
  const triggers = new TriggerService(store, logger);
  const logsRedis = new Redis(redisUrl);
  const jobs = new JobService({ jobs: jobsStore, store, imageOf: () => "img", logger });
  const app = createApp({
    logger,
    rawRouters: [
      forgeReceivers({
        tools,
        triggers,
        store,
        toolCache: await ToolCache.create(store),
        maxBodyBytes: 64 * 1024,
        sources: { ownHost: "127.0.0.1:8080", allowHosts: [] },
      }),
    ],
    api: apiRouter({
      store,
      tools,
      triggers,
      builds: new BuildControl(store, queue),
      logs: RedisBuildLogs.create(logsRedis),
      refs: { resolve: () => Promise.resolve(undefined) },
      adminTokenHash: hashSecret(adminToken),
      urls,
      routers: [jobsRouter({ tools, jobs })],
    }),
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const address = server.address();
  const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  const get = async (route: string) => {
    const start = performance.now();
    const res = await fetch(`${base}${route}`, { headers: { authorization: `Bearer ${adminToken}` } });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`GET ${route}: HTTP ${res.status}`);
    const next = /<([^>]+)>; rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
    return { ms: performance.now() - start, next };
  };
  const walk = async (first: string, times: number[], maxPages = Infinity) => {
    let pages = 0;
    for (let next: string | undefined = first; next && pages < maxPages; pages++) {
      const r = await get(next);
      times.push(r.ms);
      next = r.next;
    }
    return pages;
  };
  for (let b = 0; b < BUILD_TOOLS; b++) {
    const builds = Array.from({ length: BUILDS }, (_, i) => i);
    await inBatches(builds, 60, (i) =>
      store.createBuild({
        id: `b-${b}-${String(i).padStart(4, "0")}`,
        tool: `tool-${b}`,
        component: "web",
        commit: randomBytes(20).toString("hex"),
        ref: "refs/heads/master",
        source_url: "http://example.invalid/repo.git",
        trigger: { kind: "api", ref: "refs/heads/master" },
        status: "success",
        created_at: new Date(at.getTime() - (BUILDS - i) * 60_000).toISOString(),
      }),
    );
  }
  await walk("/api/v1/tools", []); // warm-up
  const toolTimes: number[] = [];
  let pages = 0;
  for (let round = 0; round < 5; round++) pages = await walk("/api/v1/tools?limit=100", toolTimes);
  const jobTimes: number[] = [];
  for (let i = 0; i < 300; i++) await walk(`/api/v1/tools/tool-${(i * 37) % TOOLS}/jobs`, jobTimes);
  const buildTimes: number[] = [];
  for (let i = 0; i < 60; i++) await walk(`/api/v1/tools/tool-${i % BUILD_TOOLS}/builds`, buildTimes);
  const lists: [string, number[], string][] = [
    ["API p99: tools list (pages of 100)", toolTimes, `${pages} pages walked 5 times`],
    ["API p99: jobs list", jobTimes, `${jobTimes.length} lists of 3-4 jobs with their status`],
    [
      "API p99: build list (pages of 50)",
      buildTimes,
      `${BUILD_TOOLS} tools with ${BUILDS} builds, every page`,
    ],
  ];
  for (const [name, times, note] of lists) {
    record({
      name,
      value: percentile(times, 99),
      unit: "ms",
      target: "<= 50 ms",
      met: percentile(times, 99) <= 50,
      note: `${note}; p50 ${round(percentile(times, 50))} ms, ${times.length} requests`,
    });
  }

  // A burst of pushes, one per tool, 64 at a time, from this same process.
  const hookCpu = process.cpuUsage();
  t = performance.now();
  const { accepted, hookTimes } = await pushToEveryTool(base);
  const hookRate = accepted / ((performance.now() - t) / 1000);
  const hookCpuMs = ((c) => (c.user + c.system) / 1000)(process.cpuUsage(hookCpu));
  record({
    name: "webhook intake, burst over 3,200 tools",
    value: hookRate,
    unit: "/s",
    target: ">= 3000/s",
    met: hookRate >= 3000 && accepted === TOOLS,
    note: `${accepted} of ${TOOLS} accepted (202), p99 ${round(percentile(hookTimes, 99))} ms; ${round(hookCpuMs / TOOLS)} ms of CPU per delivery, client included (fetch in this process; the wrk figure is in npm run bench); on a loaded machine the rate follows the CPU share this process gets`,
  });

  const memory = process.memoryUsage();
  const rss = memory.rss / 2 ** 20;
  record({
    name: "server RSS with all loaded",
    value: rss,
    unit: "MiB",
    target: "<= 200 MiB",
    met: rss <= 200,
    note: `this process: API, webhooks, runner with 800 supervised stand-ins, and the bench's own client and job list; V8 heap used ${Math.round(memory.heapUsed / 2 ** 20)} MiB of ${Math.round(memory.heapTotal / 2 ** 20)} MiB`,
  });

  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  // The same data served by a real `slipway server`, without this process's client and copies.
  await serverProcessRss(redisUrl);
  await runner.close();
  await queue.close();
  await store.close();
  logsRedis.disconnect();
  redis.disconnect();
}

/** A GitLab push to every tool's webhook, 64 at a time: how many were accepted and how long each took. */
async function pushToEveryTool(base: string): Promise<{ accepted: number; hookTimes: number[] }> {
  const fixture = JSON.parse(
    await readFile(path.join(repoRoot, "test/fixtures/gitlab/gitlab-push-hook.docs.json"), "utf8"),
  ) as Record<string, unknown>;
  const hookTimes: number[] = [];
  let accepted = 0;
  await inBatches(
    Array.from({ length: TOOLS }, (_, i) => i),
    64,
    async (i) => {
      const start = performance.now();
      const sha = randomBytes(20).toString("hex");
      const res = await fetch(`${base}/hooks/gitlab/tool-${i}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-gitlab-event": "Push Hook",
          "x-gitlab-token": `hook-${i}`,
        },
        body: JSON.stringify({ ...fixture, after: sha, checkout_sha: sha, ref: "refs/heads/master" }),
      });
      await res.arrayBuffer();
      if (res.status === 202) accepted++;
      hookTimes.push(performance.now() - start);
    },
  );
  return { accepted, hookTimes };
}

/** VmRSS and VmHWM of a process, in MiB. */
async function processMemory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rss: kib("VmRSS") / 1024, hwm: kib("VmHWM") / 1024 };
}

/**
 * `slipway server --role api` as a child process on the bench's Redis (3,200 tools, 10,000 jobs): its
 * RSS once it served what the bench asked of the in-process server — every page of the tools list, 300
 * jobs lists, 60 build lists and a push to every tool's webhook. The api role, because a deployer here
 * would start the 10,000 jobs' containers; the runner's own memory is in the in-process figure.
 */
async function serverProcessRss(redisUrl: string): Promise<void> {
  const home = await mkdtemp(path.join(os.tmpdir(), "slipway-bench-scale-server-"));
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, "dist/services/main.js"), "server", "--role", "api"],
    {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: os.homedir(),
        SLIPWAY_HOME: home,
        SLIPWAY_PORT: String(port),
        SLIPWAY_REGISTRY_PORT: String(await freePort()),
        REDIS_URL: redisUrl,
        SLIPWAY_LOG_LEVEL: "warn",
        // One address sends every delivery here; the limits are not what this measures.
        SLIPWAY_WEBHOOK_RATE_PER_TOOL: "0",
        SLIPWAY_WEBHOOK_RATE_PER_ADDRESS: "0",
      },
      cwd: home,
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const exited = new Promise((r) => child.once("exit", r));
  try {
    await waitForPort(port, 120_000);
    const base = `http://127.0.0.1:${port}`;
    const token = (await readFile(path.join(home, "admin-token"), "utf8")).trim();
    const started = await processMemory(child.pid!);
    const get = async (route: string) => {
      const res = await fetch(`${base}${route}`, { headers: { authorization: `Bearer ${token}` } });
      const text = await res.text();
      if (!res.ok) throw new Error(`slipway server: GET ${route}: HTTP ${res.status} ${text.slice(0, 200)}`);
      return /<([^>]+)>; rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
    };
    for (let next: string | undefined = "/api/v1/tools?limit=100"; next;) next = await get(next);
    for (let i = 0; i < 300; i++) await get(`/api/v1/tools/tool-${(i * 37) % TOOLS}/jobs`);
    for (let i = 0; i < 60; i++) await get(`/api/v1/tools/tool-${i % BUILD_TOOLS}/builds`);
    const { accepted } = await pushToEveryTool(base);
    const loaded = await processMemory(child.pid!);
    record({
      name: "slipway server RSS, all loaded (api role)",
      value: loaded.rss,
      unit: "MiB",
      target: "<= 200 MiB",
      met: loaded.rss <= 200,
      note: `a child \`slipway server --role api\` on this Redis: ${round(started.rss)} MiB once listening; then every tools page, 300 jobs lists, 60 build lists and ${accepted} of ${TOOLS} webhooks accepted; peak ${round(loaded.hwm)} MiB`,
    });
  } finally {
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await rm(home, { recursive: true, force: true });
  }
}

/** Writes the figures under `scale` in bench/results/latest.json, keeping the other sections. */
async function writeScaleResults(windowS: number): Promise<void> {
  const out = path.join(repoRoot, "bench", "results");
  await mkdir(out, { recursive: true });
  const file = path.join(out, "latest.json");
  const previous = (await readFile(file, "utf8").then(JSON.parse, () => ({}))) as Record<string, unknown>;
  const machine = { cores: os.cpus().length, node: process.version, at: new Date().toISOString() };
  const load = os.loadavg().map(round);
  // Busy: more than half the cores' worth of load over the last 5 minutes came from something else too.
  const busy = (load[1] ?? 0) > machine.cores / 2;
  const note = `${TOOLS} tools, ${JOBS} jobs, runner window ${windowS} s; load average ${load.join(" ")} at the end${busy ? " (the machine was busy: figures under load)" : ""}`;
  await writeFile(file, JSON.stringify({ ...previous, scale: { machine, note, figures } }, null, 2) + "\n");
  process.stdout.write(`  ${note}\n\nwrote the scale section of bench/results/latest.json\n`);
}

/** Every figure on a fresh redis-server, removed afterwards. */
export async function scaleBench(windowArg?: string): Promise<void> {
  const windowS = windowArg && /^[0-9]+$/.test(windowArg) ? Number(windowArg) : DEFAULT_WINDOW_S;
  process.stdout.write(
    `scale: ${TOOLS} tools, ${JOBS} jobs, load average ${os.loadavg().map(round).join(" ")}\n`,
  );
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-bench-scale-"));
  const redis = await RedisServer.start(dir, 0);
  try {
    await measure(redis.url, windowS);
  } finally {
    await redis.close();
    await rm(dir, { recursive: true, force: true });
  }
  await writeScaleResults(windowS);
}
