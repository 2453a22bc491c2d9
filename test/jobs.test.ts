import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile, copyFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { containerOwner } from "../services/adapters/podman/confinement.js";
import { ToolNetworks } from "../services/adapters/podman/network.js";
import { PodmanJobsRuntime } from "../services/adapters/podman/jobs-runtime.js";
import { podman } from "../services/adapters/podman/podman.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { expandSchedule } from "../services/domain/jobs/cron.js";
import { JobService } from "../services/domain/jobs/job-service.js";
import type { JobDefinition } from "../services/domain/jobs/job.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../services/domain/jobs/runner.js";
import type { JobProcess, JobsRuntime } from "../services/ports/jobs-runtime.js";
import type { Release } from "../services/domain/releases/release.js";
import { createLogger } from "../services/platform/logger.js";
import { run } from "../services/platform/process.js";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, pythonApp, waitFor } from "./helpers/apps.js";
import { clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";
import { type JobsApi, startJobsApi, testJob } from "./helpers/jobs-api.js";
import { startRedis } from "./helpers/redis.js";

const repoRoot = path.resolve(import.meta.dirname, "..");
const logger = createLogger({ level: "silent" });
const suffix = randomBytes(3).toString("hex");
const tool = `jobs-${suffix}`;
const image = `localhost/slipway-jobs-test:${suffix}`;

function release(id: string, config?: Release["config"]): Release {
  return {
    id,
    tool,
    component: "web",
    build_id: `b-${id}`,
    commit: "0".repeat(40),
    image,
    image_digest: "sha256:" + "0".repeat(64),
    trigger: { kind: "api", ref: "refs/heads/main" },
    status: "live",
    created_at: new Date().toISOString(),
    config,
  };
}

/**
 * The jobs of one tool with real Redis and real podman. The image is a tiny busybox one built here
 * (no registry, no build: the build path has its own tests); the tool's "live release" is a record
 * pointing at it. Everything else — store, runner, podman runtime, HTTP API — is what the server runs.
 */
describe("jobs on the local profile", () => {
  let redisServer: { url: string; stop: () => Promise<void> };
  let redis: Redis;
  let store: RedisJobsStore;
  let jobs: JobService;
  let runner: JobRunner;
  let jobsApi: JobsApi | undefined;
  let base: string;
  let workDir: string;
  const releases = new Map<string, Release>([["rel1", release("rel1")]]);
  const live = "rel1";
  const owner = containerOwner(`/tmp/slipway-jobs-test-${suffix}`, "jobs");
  const networks = new ToolNetworks({
    repoRoot,
    owner: containerOwner(`/tmp/slipway-jobs-test-${suffix}`, "net"),
  });

  async function api<T>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  async function containersOf(job: string): Promise<string[]> {
    const res = await podman(
      [
        "ps",
        "--all",
        "--quiet",
        "--filter",
        `label=io.slipway.owner=${owner}`,
        "--filter",
        `label=io.slipway.job=${job}`,
      ],
      { repoRoot },
    );
    return res.stdout.split("\n").filter(Boolean);
  }

  beforeAll(async () => {
    workDir = await mkdtemp(path.join(os.tmpdir(), "slipway-jobs-"));
    const root = path.join(workDir, "rootfs");
    await mkdir(path.join(root, "bin"), { recursive: true });
    await mkdir(path.join(root, "etc"));
    await mkdir(path.join(root, "tmp"));
    await copyFile("/bin/busybox", path.join(root, "bin", "busybox"));
    for (const applet of ["sh", "sleep", "cat", "date", "id", "echo", "true", "false"]) {
      await symlink("busybox", path.join(root, "bin", applet));
    }
    await writeFile(
      path.join(root, "etc", "passwd"),
      "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n",
    );
    const tarball = path.join(workDir, "rootfs.tar");
    await run("tar", ["-C", root, "-cf", tarball, "."]);
    await podman(["import", "--change", "USER 1000:1000", "--change", "ENV PATH=/bin", tarball, image], {
      repoRoot,
    });

    redisServer = await startRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 3 });
    store = RedisJobsStore.create(redis);
    jobs = new JobService({
      jobs: store,
      store: {
        getRoute: (t) =>
          Promise.resolve(t === tool ? { tool, release_id: live, host: "127.0.0.1", port: 1 } : undefined),
        getRelease: (id) => Promise.resolve(releases.get(id)),
      },
      imageOf: () => image,
      logger,
    });
    runner = new JobRunner({
      store,
      runtime: new PodmanJobsRuntime({
        repoRoot,
        registry: { host: "registry.invalid:5000", username: "u", password: "p" },
        namePrefix: owner,
        networks,
      }),
      envFor: () => Promise.resolve({ GREETING: "hello from env" }),
      logger,
      options: { ...DEFAULT_RUNNER_OPTIONS, tickMs: 500, memoryMb: 64, owner: "test" },
    });
    await runner.start();

    jobsApi = await startJobsApi(jobs, tool, logger);
    base = jobsApi.base;
  });

  afterAll(async () => {
    for (const j of (await store?.listJobs(tool)) ?? []) await store.deleteJob(tool, j.name);
    await runner?.close();
    await jobsApi?.close();
    redis?.disconnect();
    await redisServer?.stop();
    await podman(["rmi", "-f", image], { repoRoot, allowFailure: true });
    await networks.removeUnused();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  type WaitAnswer = {
    final: boolean;
    exit_code: number | null;
    status: string;
    runs: { id: string; attempt: number; status: string; lines: string[] }[];
  };
  const waitRun = (name: string, runId: string) =>
    waitFor(
      `run ${runId} of ${name} to end`,
      async () => {
        const r = await api<WaitAnswer>("GET", `/${name}/runs/${runId}?wait=20`);
        return r.body.final ? r.body : undefined;
      },
      90_000,
    );

  it("runs a one-off job on demand: exit code and output come back, the container is gone", async () => {
    const created = await api<{ run_id: string; type: string }>("POST", "", {
      name: "hello",
      command: 'echo "hello from job: $GREETING"; id -u; echo "to stderr" >&2; exit 3',
      image: "python3.11",
    });
    expect(created.status).toBe(201);
    expect(created.body.type).toBe("one-off");
    const done = await waitRun("hello", created.body.run_id);
    expect(done.exit_code).toBe(3);
    expect(done.status).toBe("failed");
    expect(done.runs[0]!.lines).toEqual(["hello from job: hello from env", "1000", "to stderr"]);
    expect(await containersOf("hello")).toEqual([]);

    // Run again by name: a second run with its own log, the first one's log still readable.
    const again = await api<{ run_id: string }>("POST", "", { name: "hello" });
    expect(again.status).toBe(201);
    await waitRun("hello", again.body.run_id);
    const logs = await api<{ runs: { id: string; lines: string[] }[] }>("GET", "/hello/logs");
    expect(logs.body.runs.map((r) => r.id)).toEqual([created.body.run_id, again.body.run_id]);
    expect(logs.body.runs.every((r) => r.lines.includes("to stderr"))).toBe(true);

    const conflict = await api<{ error: { code: string } }>("POST", "", { name: "hello", command: "true" });
    expect(conflict.status).toBe(409);
  });

  it("retries a failing run and kills a run past its timeout", async () => {
    const retried = await api<{ run_id: string }>("POST", "", {
      name: "flaky",
      command: "echo attempt; exit 2",
      retry: 2,
    });
    const r = await waitRun("flaky", retried.body.run_id);
    expect(r.runs.map((x) => [x.attempt, x.status])).toEqual([
      [1, "failed"],
      [2, "failed"],
      [3, "failed"],
    ]);
    expect(r.exit_code).toBe(2);

    const slow = await api<{ run_id: string }>("POST", "", {
      name: "slow",
      command: "echo start; sleep 60",
      timeout: 2,
    });
    const s = await waitRun("slow", slow.body.run_id);
    expect(s.status).toBe("timeout");
    expect(s.runs[0]!.lines).toEqual(["start"]);
    expect(await containersOf("slow")).toEqual([]);
  });

  it("restarts a continuous job that exits 1 and reports restarts and the last exit code", async () => {
    const created = await api("POST", "", {
      name: "crashy",
      command: "echo starting; exit 1",
      continuous: true,
    });
    expect(created.status).toBe(201);
    const shown = await waitFor(
      "crashy to be restarted",
      async () => {
        const r = await api<{ status: { restarts: number; last_exit_code: number | null; state: string } }>(
          "GET",
          "/crashy",
        );
        return r.body.status.restarts >= 2 ? r.body : undefined;
      },
      // Three container starts and the backoff between them; minutes apart on a loaded machine.
      90_000,
    );
    expect(shown.status.last_exit_code).toBe(1);
    const logs = await api<{ runs: { lines: string[]; exit_code: number }[] }>("GET", "/crashy/logs");
    expect(logs.body.runs.length).toBeGreaterThanOrEqual(2);
    expect(logs.body.runs.slice(0, 2).map((x) => [x.lines, x.exit_code])).toEqual([
      [["starting"], 1],
      [["starting"], 1],
    ]);
    expect((await api("DELETE", "/crashy")).status).toBe(200);
  });

  it("restart replaces a continuous job's process; delete stops it and forgets it", async () => {
    await api("POST", "", { name: "daemon", command: "echo up; sleep 600", continuous: true });
    const first = await waitFor(
      "daemon to run",
      async () => ((await containersOf("daemon")).length === 1 ? await containersOf("daemon") : undefined),
      30_000,
    );
    expect((await api("POST", "/daemon/restart")).status).toBe(200);
    await waitFor(
      "a new daemon container",
      async () => {
        const now = await containersOf("daemon");
        return now.length === 1 && now[0] !== first[0] ? now : undefined;
      },
      30_000,
    );
    const shown = await api<{ runs: { status: string }[] }>("GET", "/daemon");
    expect(shown.body.runs.map((r) => r.status)).toEqual(["running", "stopped"]);

    expect((await api("DELETE", "/daemon")).status).toBe(200);
    await waitFor(
      "daemon to stop",
      async () => ((await containersOf("daemon")).length === 0 ? true : undefined),
      30_000,
    );
    expect((await api("GET", "/daemon")).status).toBe(404);
  });

  it("load and dump round-trip Toolforge's jobs.yaml; unchanged jobs are left alone", async () => {
    const file = [
      {
        name: "nightly",
        command: "echo nightly",
        image: "python3.11",
        schedule: "@daily",
        emails: "onfailure",
      },
      { name: "worker", command: "sleep 600", image: "python3.11", continuous: true, mem: "128Mi" },
      { name: "once", command: "echo once", image: "python3.11" },
    ];
    const loaded = await api<{ created: string[]; unchanged: string[] }>("PUT", "", { jobs: file });
    expect(loaded.status).toBe(200);
    expect(loaded.body.created.sort()).toEqual(["nightly", "once", "worker"]);
    const dump = await api<{ yaml: string }>("GET", "?dump=true");
    const items = parseYaml(dump.body.yaml) as Record<string, unknown>[];
    for (const item of file) expect(items).toContainEqual(expect.objectContaining(item));
    const nightly = await api<{ schedule_expanded: string }>("GET", "/nightly");
    expect(nightly.body.schedule_expanded).toBe(expandSchedule("@daily", tool, "nightly"));
    const workerBefore = await api<{ revision: number }>("GET", "/worker");
    const container = await waitFor(
      "worker to run",
      async () => ((await containersOf("worker")).length === 1 ? await containersOf("worker") : undefined),
      30_000,
    );

    const again = await api<{ created: string[]; updated: string[]; unchanged: string[]; deleted: string[] }>(
      "PUT",
      "",
      { jobs: items },
    );
    expect(again.body).toEqual({
      created: [],
      updated: [],
      deleted: [],
      unchanged: expect.arrayContaining(["nightly", "worker", "once"]),
    });
    expect((await api<{ revision: number }>("GET", "/worker")).body.revision).toBe(
      workerBefore.body.revision,
    );
    // Several runner ticks later the same process still runs: loading an unchanged file restarts nothing.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await containersOf("worker")).toEqual(container);

    const bad = await api<{ error: { message: string } }>("PUT", "", {
      jobs: [{ name: "x", command: "y", sched: "@daily" }],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/job 1 \(x\): sched: unknown key/);

    const fewer = await api<{ deleted: string[] }>("PUT", "", {
      jobs: items.filter((i) => i.name !== "worker"),
    });
    expect(fewer.body.deleted).toEqual(["worker"]);
    await waitFor(
      "worker to stop",
      async () => ((await containersOf("worker")).length === 0 ? true : undefined),
      30_000,
    );
  });

  it("turns a live release's components config into jobs, leaving the webservice out", async () => {
    const config = parseComponentsConfig(
      [
        "components:",
        "  web: { run: { command: web, port: 8000 } }",
        "  queue-worker: { run: { command: 'sleep 600' } }",
        "  cleanup: { run: { command: 'echo cleanup', schedule: '@hourly', retry: 1 } }",
        "  migrate: { component_type: one-off, run: { command: 'echo migrate', timeout: 60 } }",
        "",
      ].join("\n"),
      "slipway.yaml",
    );
    releases.set("rel2", release("rel2", config));
    const first = await jobs.syncRelease(releases.get("rel2")!);
    expect(first.created.sort()).toEqual(["cleanup", "migrate", "queue-worker"]);
    const list = await api<
      { name: string; type: string; source: string; schedule_expanded: string | null }[]
    >("GET", "");
    const byName = new Map(list.body.map((j) => [j.name, j]));
    expect(byName.get("web")).toBeUndefined();
    expect(byName.get("queue-worker")).toMatchObject({ type: "continuous", source: "config" });
    expect(byName.get("cleanup")).toMatchObject({
      type: "scheduled",
      schedule_expanded: expandSchedule("@hourly", tool, "cleanup"),
    });
    expect(byName.get("migrate")).toMatchObject({ type: "one-off" });
    expect((await jobs.syncRelease(releases.get("rel2")!)).unchanged.length).toBe(3);
    await waitFor(
      "queue-worker to run",
      async () => ((await containersOf("queue-worker")).length === 1 ? true : undefined),
      30_000,
    );
    // A new release of the config without the worker: the worker goes, the rest move to the new release.
    const smaller = parseComponentsConfig(
      "components:\n  web: { run: { command: web } }\n  cleanup: { run: { command: 'echo cleanup', schedule: '@hourly', retry: 1 } }\n",
      "slipway.yaml",
    );
    releases.set("rel3", release("rel3", smaller));
    const next = await jobs.syncRelease(releases.get("rel3")!);
    expect(next.deleted.sort()).toEqual(["migrate", "queue-worker"]);
    expect(next.updated).toContain("cleanup");
    for (const name of ["cleanup", "nightly", "once"]) await api("DELETE", `/${name}`);
    await waitFor(
      "queue-worker to stop",
      async () => ((await containersOf("queue-worker")).length === 0 ? true : undefined),
      30_000,
    );
  });

  it("the CLI: jobs run --wait prints the output and exits with the command's exit code; load, dump, list, show, delete", async () => {
    const root = new URL(base).origin;
    const cli = (args: string[]) =>
      run(process.execPath, [path.join(repoRoot, "dist/services/main.js"), "jobs", ...args], {
        env: { PATH: process.env.PATH, SLIPWAY_URL: root, SLIPWAY_TOKEN: "test", SLIPWAY_TOOL: tool },
        allowFailure: true,
      });
    const ran = await cli([
      "run",
      "greet",
      "--command",
      "echo hi from the cli; exit 4",
      "--image",
      "python3.11",
      "--wait",
    ]);
    expect(ran.stderr).toBe("");
    expect(ran.stdout).toBe("hi from the cli\n--- job greet failed with exit code 4\n");
    expect(ran.code).toBe(4);
    const ok = await cli(["run", "greet-ok", "--command", "echo fine", "--wait", "--json"]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      name: "greet-ok",
      final: true,
      exit_code: 0,
      status: "succeeded",
    });

    const logs = await cli(["logs", "greet"]);
    expect(logs.stdout).toMatch(
      /^--- run \S+ \(manual\) started \S+\nhi from the cli\n--- run \S+ failed with exit code 4\n$/,
    );
    // Following a one-off job that has nothing left to run prints what there is and ends.
    const followed = await cli(["logs", "greet-ok", "-f"]);
    expect(followed.stdout).toMatch(
      /^--- run \S+ \(manual\) started \S+\nfine\n--- run \S+ succeeded with exit code 0\n$/,
    );

    const file = path.join(workDir, "jobs.yaml");
    await writeFile(
      file,
      "- name: cli-nightly\n  command: ./nightly.sh\n  image: python3.11\n  schedule: '@daily'\n  emails: onfailure\n",
    );
    const loaded = await cli(["load", file]);
    expect(loaded.stdout).toContain("created: cli-nightly");
    expect(loaded.stdout).toContain("deleted: greet, greet-ok");
    const dumped = await cli(["dump"]);
    expect(parseYaml(dumped.stdout)).toEqual([
      {
        name: "cli-nightly",
        command: "./nightly.sh",
        image: "python3.11",
        schedule: "@daily",
        emails: "onfailure",
      },
    ]);
    const list = await cli(["list"]);
    expect(list.stdout).toMatch(/^cli-nightly\tscheduled\t/m);
    const shown = await cli(["show", "cli-nightly"]);
    expect(shown.stdout).toContain(
      `schedule:       @daily (${expandSchedule("@daily", tool, "cli-nightly")} UTC)`,
    );
    const bad = await cli(["load", path.join(workDir, "missing.yaml")]);
    expect(bad.code).not.toBe(0);
    expect((await cli(["delete", "cli-nightly"])).stdout).toBe("job cli-nightly deleted\n");
    const gone = await cli(["show", "cli-nightly"]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('has no job "cli-nightly"');
  });

  it("runs a per-minute scheduled job at least twice within three minutes; both logs readable after the containers are gone", async () => {
    const created = await api("POST", "", {
      name: "tick",
      command: 'echo "tick at $(date -u +%H:%M:%S)"',
      schedule: "* * * * *",
    });
    expect(created.status).toBe(201);
    const runs = await waitFor(
      "two finished runs of tick",
      async () => {
        const r = await api<{
          runs: { status: string; exit_code: number; lines: string[]; trigger: string }[];
        }>("GET", "/tick/logs");
        const done = r.body.runs.filter((x) => x.status === "succeeded");
        return done.length >= 2 ? done : undefined;
      },
      180_000,
      2000,
    );
    for (const run of runs) {
      expect(run.trigger).toBe("schedule");
      expect(run.exit_code).toBe(0);
      expect(run.lines).toEqual([expect.stringMatching(/^tick at \d\d:\d\d:\d\d$/)]);
    }
    expect(await containersOf("tick")).toEqual([]);
    const shown = await api<{ status: { next_run_at: string; last_exit_code: number } }>("GET", "/tick");
    expect(shown.body.status.last_exit_code).toBe(0);
    expect(Date.parse(shown.body.status.next_run_at)).toBeGreaterThan(Date.now() - 1000);
  }, 200_000);
});

/** A scheduled job of an image that the test runtimes never look at. */
function scheduledJob(tool: string, name: string, cron: string, at: Date): JobDefinition {
  return testJob(tool, name, at, { type: "scheduled", schedule: cron, cron });
}

/**
 * The Redis commands an action issues, as MONITOR shows them (with those Lua scripts run), up to an
 * ECHO sent after it.
 */
function commandCounter(redis: Redis, monitor: Redis): (action: () => Promise<void>) => Promise<string[]> {
  const commands: string[] = [];
  monitor.on("monitor", (_time: string, args: string[]) => commands.push(args.slice(0, 2).join(" ")));
  return async (action) => {
    commands.length = 0;
    await action();
    const marker = `end-of-tick-${randomBytes(4).toString("hex")}`;
    await redis.echo(marker);
    await waitFor(
      "the monitor to see the tick",
      () => Promise.resolve(commands.some((c) => c.includes(marker)) || undefined),
      5000,
    );
    return commands.slice(
      0,
      commands.findIndex((c) => c.includes(marker)),
    );
  };
}

/** The scheduler's rules with a clock the test moves, real Redis, and processes that end when told to. */
describe("the scheduler", () => {
  let redisServer: { url: string; stop: () => Promise<void> };
  let redis: Redis;

  beforeAll(async () => {
    redisServer = await startRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 3 });
  });
  afterAll(async () => {
    redis?.disconnect();
    await redisServer?.stop();
  });

  it("never runs two of one job at once: a due run while the previous is running is recorded as skipped", async () => {
    const store = RedisJobsStore.create(redis);
    const finish: (() => void)[] = [];
    const runtime: JobsRuntime = {
      removeLeftovers: () => Promise.resolve(0),
      start: (spec, onLines) => {
        onLines([`started ${spec.runId}`]);
        let end!: () => void;
        const exited = new Promise<{ exitCode: number }>((resolve) => (end = () => resolve({ exitCode: 0 })));
        finish.push(end);
        const p: JobProcess = { id: spec.runId, exited, kill: () => Promise.resolve(end()) };
        return Promise.resolve(p);
      },
    };
    let now = new Date("2026-03-01T10:00:30Z");
    const runner = new JobRunner({
      store,
      runtime,
      envFor: () => Promise.resolve({}),
      logger,
      options: { ...DEFAULT_RUNNER_OPTIONS, owner: "clock" },
      now: () => now,
    });
    await store.putJob(scheduledJob("t", "every-minute", "* * * * *", now));
    await runner.tick(); // learns the next time: 10:01
    expect((await store.getStatus("t", "every-minute"))?.next_run_at).toBe("2026-03-01T10:01:00.000Z");
    expect(await store.listRuns("t", "every-minute")).toEqual([]);
    now = new Date("2026-03-01T10:01:02Z");
    await runner.tick();
    await waitFor(
      "the first run",
      async () => ((await store.listRuns("t", "every-minute")).length === 1 ? true : undefined),
      5000,
    );
    now = new Date("2026-03-01T10:02:01Z");
    await runner.tick();
    const runs = await waitFor(
      "the skipped run",
      async () => {
        const r = await store.listRuns("t", "every-minute");
        return r.length === 2 ? r : undefined;
      },
      5000,
    );
    expect(runs.map((r) => [r.status, r.reason])).toEqual([
      ["skipped", "skipped: still running"],
      ["running", null],
    ]);
    finish.forEach((f) => f());
    await waitFor(
      "the first run to end",
      async () => ((await store.listRuns("t", "every-minute"))[1]?.status === "succeeded" ? true : undefined),
      5000,
    );
    now = new Date("2026-03-01T10:03:00Z");
    await runner.tick();
    await waitFor(
      "a third run",
      async () => ((await store.listRuns("t", "every-minute")).length === 3 ? true : undefined),
      5000,
    );
    finish.forEach((f) => f());
    await runner.close();
  });
});

/**
 * Thousands of tools: the schedule is a Redis sorted set by next fire time, so a tick reads the due jobs
 * only. Every Redis command is counted (MONITOR, which also shows the commands Lua scripts run).
 */
/** A runner of the test's store and runtime, on the test's clock when given one. */
function standInRunner(
  store: RedisJobsStore,
  runtime: JobsRuntime,
  owner: string,
  now?: () => Date,
): JobRunner {
  return new JobRunner({
    store,
    runtime,
    envFor: () => Promise.resolve({}),
    logger,
    options: { ...DEFAULT_RUNNER_OPTIONS, owner },
    ...(now ? { now } : {}),
  });
}

describe("the scheduler with many tools", () => {
  const N = 1000;
  const due = [0, 500];
  let redisServer: { url: string; stop: () => Promise<void> };
  let redis: Redis;
  let monitor: Redis | undefined;

  beforeAll(async () => {
    redisServer = await startRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 3 });
  });
  afterAll(async () => {
    monitor?.disconnect();
    redis?.disconnect();
    await redisServer?.stop();
  });

  it(`a tick with ${N} scheduled jobs of which ${due.length} are due issues a bounded number of Redis commands and fires each due time once across two runners; a restart does not catch up missed times`, async () => {
    const store = RedisJobsStore.create(redis);
    const started: string[] = [];
    const runtime: JobsRuntime = {
      removeLeftovers: () => Promise.resolve(0),
      start: (spec) => {
        started.push(spec.tool);
        return Promise.resolve({
          id: spec.runId,
          exited: Promise.resolve({ exitCode: 0 }),
          kill: () => Promise.resolve(),
        });
      },
    };
    let now = new Date("2026-03-01T10:00:30Z");
    const runnerOf = (owner: string) => standInRunner(store, runtime, owner, () => now);
    const [a, b] = [runnerOf("a"), runnerOf("b")];
    for (let i = 0; i < N; i++) {
      const cron = due.includes(i) ? "* * * * *" : "0 12 * * *";
      await store.putJob(scheduledJob(`many-${i}`, "report", cron, now));
    }
    await a.tick(); // learns every job's next time
    await b.tick();
    expect((await store.getStatus("many-1", "report"))?.next_run_at).toBe("2026-03-01T12:00:00.000Z");
    expect((await store.getStatus("many-0", "report"))?.next_run_at).toBe("2026-03-01T10:01:00.000Z");

    monitor = await redis.monitor();
    const counted = commandCounter(redis, monitor);
    now = new Date("2026-03-01T10:01:02Z");
    const tickA = await counted(() => a.tick());
    // Per due job: its definition, the move of its time, its status, and its run (started at once here).
    expect(tickA.length, tickA.slice(0, 30).join("\n")).toBeLessThan(100);
    // The runs started above write their records in the background: let them end before counting B.
    for (const i of due) {
      await waitFor(
        `the run of many-${i} to end`,
        async () => (await store.getStatus(`many-${i}`, "report"))?.state === "waiting" || undefined,
        5000,
      );
    }
    const tickB = await counted(() => b.tick());
    expect(tickB.length, tickB.slice(0, 30).join("\n")).toBeLessThan(20);
    await a.close();
    await b.close();
    expect(started.sort()).toEqual(due.map((i) => `many-${i}`).sort());
    expect((await store.getStatus("many-0", "report"))?.next_run_at).toBe("2026-03-01T10:02:00.000Z");
    expect(await store.listRuns("many-1", "report")).toEqual([]);

    // Every runner stopped over 10:02 and 10:03: the next one starts at 10:03:40 and fires from 10:04 on.
    now = new Date("2026-03-01T10:03:40Z");
    const c = runnerOf("c");
    await c.start();
    await waitFor(
      "the restarted runner to move the missed time",
      async () =>
        (await store.getStatus("many-0", "report"))?.next_run_at === "2026-03-01T10:04:00.000Z" || undefined,
      5000,
    );
    await c.close();
    expect(started).toHaveLength(due.length);
  });

  // Many continuous jobs: their definitions are read again only when they change, and their claims are
  // renewed a few seconds apart in one command, so an idle tick costs a few commands however many run.
  const CONTINUOUS = 500;
  it(`a tick with ${CONTINUOUS} continuous jobs running issues a bounded number of Redis commands; a deleted one stops at the next tick, on one runner only`, async () => {
    const store = RedisJobsStore.create(redis);
    const running = new Map<string, string>();
    const runtime: JobsRuntime = {
      removeLeftovers: () => Promise.resolve(0),
      start: (spec) => {
        let end!: () => void;
        const exited = new Promise<{ exitCode: number }>((resolve) => (end = () => resolve({ exitCode: 0 })));
        running.set(spec.runId, spec.tool);
        return Promise.resolve({
          id: spec.runId,
          exited: exited.finally(() => running.delete(spec.runId)),
          kill: () => Promise.resolve(end()),
        });
      },
    };
    const at = new Date("2026-03-01T10:00:30Z");
    // On the clock of the test above, whose schedules are not due then.
    const runnerOf = (owner: string) => standInRunner(store, runtime, owner, () => at);
    for (let i = 0; i < CONTINUOUS; i++)
      await store.putJob(testJob(`cont-${i}`, "bot", at, { type: "continuous" }));
    const [a, b] = [runnerOf("a"), runnerOf("b")];
    await a.tick();
    await b.tick();
    await waitFor("every process", () => Promise.resolve(running.size === CONTINUOUS || undefined), 10_000);
    await waitFor(
      "their status",
      async () =>
        (await store.getStatus(`cont-${CONTINUOUS - 1}`, "bot"))?.state === "running" ? true : undefined,
      10_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 300)); // the last status writes
    expect(running.size).toBe(CONTINUOUS); // b claimed none of them

    monitor ??= await redis.monitor();
    const counted = commandCounter(redis, monitor);
    const idle = await counted(() => a.tick());
    // Before: every continuous definition and one claim each, about 2 commands per job.
    expect(idle.length, idle.slice(0, 30).join("\n")).toBeLessThan(10);

    await store.deleteJob("cont-7", "bot");
    await counted(() => Promise.all([a.tick(), b.tick()]).then(() => undefined));
    await waitFor(
      "the deleted job's process to stop",
      () => Promise.resolve([...running.values()].includes("cont-7") ? undefined : true),
      5000,
    );
    expect(running.size).toBe(CONTINUOUS - 1);
    await a.close();
    await b.close();
    expect(running.size).toBe(0);
  });
});

/**
 * The whole path with a real build: `git push` of a Python app whose slipway.yaml declares a worker and
 * a one-off; once the release is live they are jobs of its image (pulled from the registry, run through
 * the CNB launcher as the image's user), and an env var change restarts the worker with the new value.
 */
describe("jobs of a pushed app", () => {
  let server: RunningServer;
  let home: string;
  const name = `jobapp-${suffix}`;

  const { api } = clientOf(() => server);
  const call = <T>(method: string, route: string, body?: unknown) =>
    api<T>(route, { method, body: body === undefined ? undefined : JSON.stringify(body) });

  beforeAll(async () => {
    ({ server, home } = await startLocalServer({
      name: "jobs-e2e",
      env: { SLIPWAY_HEALTH_TIMEOUT_S: "30" },
    }));
  }, 1_200_000);

  afterAll(async () => {
    await server?.close();
    // The server leaves webservices running (a restart keeps serving); this test's are removed here.
    await removeToolContainers(name);
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("runs the config's worker and one-off from the release image; an env var change restarts the worker", async () => {
    const tool = await call<{ git_url: string; token: string }>("POST", "/api/v1/tools", { name });
    const repo = await gitRepo({
      ...pythonApp("web of the job app"),
      "worker.py":
        "import os, time\nprint('worker up as', os.getuid(), 'greeting', os.environ.get('GREETING'), flush=True)\ntime.sleep(600)\n",
      Procfile: "web: python3 app.py\nworker: python3 worker.py\n",
      "slipway.yaml": [
        "components:",
        "  web: { run: { command: web, port: 8000 } }",
        "  worker: { run: { command: worker } }",
        "  migrate:",
        "    component_type: one-off",
        "    run: { command: 'python3 -c \"print(40 + 2)\"' }",
        "",
      ].join("\n"),
    });
    await git(repo.dir, [
      "push",
      "-q",
      tool.git_url.replace("http://", `http://user:${tool.token}@`),
      "main",
    ]);
    const base = `/api/v1/tools/${name}/jobs`;
    type Job = { name: string; type: string; source: string; status: { state: string } };
    const found = await waitFor(
      "the config's jobs",
      async () => {
        const list = await call<Job[]>("GET", base);
        if (list.length === 2) return { list, failed: undefined };
        // A failed build or deploy ends the wait with its story rather than a timeout.
        const builds = await call<{ status: string; reason: string | null; log_tail: string[] }[]>(
          "GET",
          `/api/v1/tools/${name}/builds`,
        );
        const failed = builds.find((b) => b.status === "failure" || /deploy failed/.test(b.reason ?? ""));
        return failed ? { list: undefined, failed } : undefined;
      },
      600_000,
      1000,
    );
    if (found.failed) {
      expect.fail(
        `the app did not deploy: ${found.failed.reason ?? ""}\n${found.failed.log_tail.join("\n")}`,
      );
    }
    const jobs = found.list;
    expect(jobs.map((j) => [j.name, j.type, j.source])).toEqual([
      ["migrate", "one-off", "config"],
      ["worker", "continuous", "config"],
    ]);
    type Logs = { runs: { id: string; status: string; lines: string[] }[] };
    const workerLine = async (expected: RegExp) =>
      waitFor(
        `worker output ${String(expected)}`,
        async () => {
          const logs = await call<Logs>("GET", `${base}/worker/logs`);
          return logs.runs.some((r) => r.lines.some((l) => expected.test(l))) ? logs : undefined;
        },
        120_000,
        1000,
      );
    const first = await workerLine(/^worker up as \d+ greeting None$/);
    const uid = /as (\d+)/.exec(first.runs.at(-1)!.lines[0]!)![1];
    expect(uid).not.toBe("0");

    const ran = await call<{ run_id: string }>("POST", base, { name: "migrate" });
    const done = await waitFor(
      "migrate",
      async () => {
        const r = await call<{ final: boolean; exit_code: number; runs: { lines: string[] }[] }>(
          "GET",
          `${base}/migrate/runs/${ran.run_id}?wait=20`,
        );
        return r.final ? r : undefined;
      },
      120_000,
    );
    expect(done.exit_code).toBe(0);
    expect(done.runs[0]!.lines).toEqual(["42"]);

    await call("PUT", `/api/v1/tools/${name}/envvars/GREETING`, { value: "hello" });
    await workerLine(/^worker up as \d+ greeting hello$/);
  }, 900_000);
});
