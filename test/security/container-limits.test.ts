import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rm, stat, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { containerOwner } from "../../services/adapters/podman/confinement.js";
import { PodmanJobsRuntime } from "../../services/adapters/podman/jobs-runtime.js";
import { ToolNetworks } from "../../services/adapters/podman/network.js";
import { podman } from "../../services/adapters/podman/podman.js";
import { PodmanRuntime } from "../../services/adapters/podman/runtime.js";
import { RedisJobsStore } from "../../services/adapters/store/redis-jobs.js";
import { JobService } from "../../services/domain/jobs/job-service.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../../services/domain/jobs/runner.js";
import type { JobExit, JobProcess } from "../../services/ports/jobs-runtime.js";
import type { Release } from "../../services/domain/releases/release.js";
import { createLogger } from "../../services/platform/logger.js";
import { run } from "../../services/platform/process.js";
import { waitFor } from "../helpers/apps.js";
import { startRedis } from "../helpers/redis.js";

// A release phase or a job that eats memory or processes, in real podman containers with small limits:
// each is stopped at once with the limit it hit, where before it held on until its timeout (a job may
// have none) or ended as a bare exit 137. The image is a tiny busybox one built here, with a stand-in
// for the CNB launcher that runs `$RELEASE` for the release process and its argument otherwise. The fork
// bombs run only inside containers with a pid limit.
const repoRoot = path.resolve(import.meta.dirname, "../..");
const suffix = randomBytes(3).toString("hex");
const owner = containerOwner(`/tmp/slipway-container-limits-${suffix}`, "jobs");
const registry = { host: "registry.invalid:5000", username: "u", password: "p" };
const networks = new ToolNetworks({
  repoRoot,
  owner: containerOwner(`/tmp/slipway-container-limits-${suffix}`, "net"),
});
/** A job without a limit watcher would run on; this is long enough to see that it does. */
const STILL_RUNNING_AFTER_MS = 60_000;

/** Restarts its memory hog whenever the kernel kills it, as a retrying tool would. */
const CHILD_HOG = `while true; do sh -c 'a=x; while true; do a="$a$a"; done' || echo "hog: killed, again"; done`;
/** The process itself is the hog. */
const HOG = `echo "hog: allocating"; a=x; while true; do a="$a$a"; done`;
const BOMB = `echo "bomb: forking"; bomb() { bomb | bomb & }; bomb; wait; sleep 600`;

let workDir: string;
let image: string;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), "slipway-container-limits-"));
  const root = path.join(workDir, "rootfs");
  for (const dir of ["bin", "etc", "tmp", "cnb/lifecycle"])
    await mkdir(path.join(root, dir), { recursive: true });
  await copyFile("/bin/busybox", path.join(root, "bin", "busybox"));
  for (const applet of ["sh", "sleep", "echo"]) await symlink("busybox", path.join(root, "bin", applet));
  await writeFile(
    path.join(root, "etc", "passwd"),
    "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n",
  );
  const launcher = path.join(root, "cnb", "lifecycle", "launcher");
  await writeFile(
    launcher,
    '#!/bin/sh\nif [ "$1" = release ]; then exec sh -c "$RELEASE"; fi\nexec sh -c "$1"\n',
  );
  await chmod(launcher, 0o755);
  const tarball = path.join(workDir, "rootfs.tar");
  await run("tar", ["-C", root, "-cf", tarball, "."]);
  const tag = `localhost/slipway-limits-test:${suffix}`;
  await podman(["import", "--change", "USER 1000:1000", "--change", "ENV PATH=/bin", tarball, tag], {
    repoRoot,
  });
  // By digest, as releases name their images: the runtime then uses the local copy instead of pulling.
  const digest = await podman(["inspect", "--format", "{{.Digest}}", tag], { repoRoot });
  image = `localhost/slipway-limits-test@${digest.stdout.trim()}`;
}, 120_000);

afterAll(async () => {
  await podman(["rmi", "-f", `localhost/slipway-limits-test:${suffix}`], { repoRoot, allowFailure: true });
  await networks.removeUnused();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

// A container a failed test left running (a bomb that was not stopped) goes now, not at its timeout.
afterEach(async () => {
  const names = await leftovers();
  if (names.length) await podman(["rm", "-f", "-t", "0", ...names], { repoRoot, allowFailure: true });
});

async function leftovers(): Promise<string[]> {
  const r = await podman(["ps", "-a", "--format", "{{.Names}}", "--filter", `name=${owner}`], { repoRoot });
  return r.stdout.split("\n").filter(Boolean);
}

describe("release phase at its container's limits", () => {
  const runtime = new PodmanRuntime({ repoRoot, registry, namePrefix: owner, networks });
  const releasePhase = (command: string, memoryMb: number) => {
    const lines: string[] = [];
    const result = runtime.runOnce(
      { tool: "hostile", process: "release", releaseId: "r1", image, env: { RELEASE: command }, memoryMb },
      "release",
      // The deployer's default release-phase timeout.
      600,
      (line) => lines.push(line),
    );
    return { result, lines };
  };

  it("a release process that is itself killed for memory: `ran out of memory (limit 64 MiB)`", async () => {
    // conmon drops an empty `oom` file in podman's working directory on an OOM kill; before podman ran
    // from a directory of its own, that was the directory Slipway was started in (the user's checkout).
    const stray = path.join(process.cwd(), "oom");
    await rm(stray, { force: true });
    const { result, lines } = releasePhase(HOG, 64);
    expect(await result).toMatchObject({
      code: 137,
      timedOut: false,
      exceeded: { kind: "memory", limitMb: 64 },
    });
    expect(lines).toContain("hog: allocating");
    expect(await leftovers()).toEqual([]);
    expect(existsSync(stray)).toBe(false);
  }, 120_000);

  it("a release phase whose children keep being killed for memory is stopped at once", async () => {
    const { result } = releasePhase(CHILD_HOG, 64);
    const settled = await Promise.race([result, sleep(STILL_RUNNING_AFTER_MS).then(() => "still running")]);
    expect(settled).toMatchObject({ timedOut: false, exceeded: { kind: "memory", limitMb: 64 } });
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it("a fork bomb in the release phase: `started too many processes (limit 512)`", async () => {
    const { result } = releasePhase(BOMB, 128);
    const settled = await Promise.race([result, sleep(STILL_RUNNING_AFTER_MS).then(() => "still running")]);
    expect(settled).toMatchObject({ timedOut: false, exceeded: { kind: "pids", limit: 512 } });
    expect(await leftovers()).toEqual([]);
  }, 120_000);
});

describe("a webservice's output", () => {
  const runtime = new PodmanRuntime({ repoRoot, registry, namePrefix: owner, networks });
  // 400,000 lines of 100 bytes: 40 MB, four times the 10 MiB a container's log may hold on disk.
  const FLOOD = `i=0; while [ $i -lt 400000 ]; do echo "${"x".repeat(99)}"; i=$((i+1)); done; echo flood-done; sleep 600`;

  it("cannot fill the host's disk: its container log stays within 10 MiB, and the latest lines are kept", async () => {
    // Before the limit in infra/containers.conf, this log grew by about 35 MB a second (2 TB a day).
    const app = await runtime.start({
      tool: "hostile",
      process: "web",
      releaseId: "r1",
      image,
      env: {},
      port: 8000,
      memoryMb: 64,
      command: FLOOD,
    });
    try {
      const tail = () => podman(["logs", "--tail", "1", app.id], { repoRoot, allowFailure: true });
      await waitFor(
        "the flood to end",
        async () => ((await tail()).stdout.includes("flood-done") ? true : undefined),
        110_000,
        500,
      );
      const logPath = await podman(["inspect", "--format", "{{.HostConfig.LogConfig.Path}}", app.id], {
        repoRoot,
      });
      const { size } = await stat(logPath.stdout.trim());
      expect(size).toBeLessThanOrEqual(10 * 1024 * 1024);
    } finally {
      await runtime.stop(app.id);
    }
    expect(await leftovers()).toEqual([]);
  }, 120_000);
});

describe("jobs at their container's limits", () => {
  const runtime = new PodmanJobsRuntime({ repoRoot, registry, namePrefix: owner, networks });

  async function job(name: string, command: string, memoryMb: number): Promise<JobExit | "still running"> {
    let proc: JobProcess | undefined;
    try {
      proc = await runtime.start(
        {
          tool: "hostile",
          job: name,
          runId: `run-${name}-${suffix}`,
          image,
          releaseId: "r1",
          command,
          env: {},
          memoryMb,
        },
        () => undefined,
      );
      return await Promise.race([
        proc.exited,
        sleep(STILL_RUNNING_AFTER_MS).then(() => "still running" as const),
      ]);
    } finally {
      await proc?.kill();
      await proc?.exited;
    }
  }

  it("a job whose children keep being killed for memory: `ran out of memory (limit 64 MiB)`", async () => {
    expect(await job("hog", CHILD_HOG, 64)).toEqual({
      exitCode: 137,
      exceeded: { kind: "memory", limitMb: 64 },
    });
    expect(await leftovers()).toEqual([]);
  }, 120_000);

  it("a fork bomb job: `started too many processes (limit 512)`", async () => {
    // 512 shells take about 100 MiB: with 128 MiB the kernel sometimes killed the job's own shell for
    // memory first, and a container whose main process dies takes its counters with it (see
    // PodmanJobsRuntime). With room for them, the process limit is what stops it, every time.
    expect(await job("bomb", BOMB, 512)).toEqual({ exitCode: 137, exceeded: { kind: "pids", limit: 512 } });
    expect(await leftovers()).toEqual([]);
  }, 120_000);
});

describe("a job run stopped at a limit", () => {
  let redisServer: { url: string; stop: () => Promise<void> } | undefined;
  let redis: Redis | undefined;
  let runner: JobRunner | undefined;
  const logger = createLogger({ level: "silent" });

  afterAll(async () => {
    await runner?.close();
    redis?.disconnect();
    await redisServer?.stop();
  });

  it("is `failed` with `ran out of memory (limit 64 MiB)` as its reason, in its log too", async () => {
    redisServer = await startRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 3 });
    const store = RedisJobsStore.create(redis);
    const live: Release = {
      id: "r1",
      tool: "hostile",
      component: "web",
      build_id: "b-r1",
      commit: "0".repeat(40),
      image,
      image_digest: image.split("@")[1]!,
      trigger: { kind: "api", ref: "refs/heads/main" },
      status: "live",
      created_at: new Date().toISOString(),
    };
    const jobs = new JobService({
      jobs: store,
      store: {
        getRoute: () => Promise.resolve({ tool: "hostile", release_id: "r1", host: "127.0.0.1", port: 1 }),
        getRelease: () => Promise.resolve(live),
      },
      imageOf: () => image,
      logger,
    });
    runner = new JobRunner({
      store,
      runtime: new PodmanJobsRuntime({ repoRoot, registry, namePrefix: owner, networks }),
      envFor: () => Promise.resolve({}),
      logger,
      options: { ...DEFAULT_RUNNER_OPTIONS, tickMs: 500, memoryMb: 64, owner: "test" },
    });
    await runner.start();

    const { run_id } = await jobs.run("hostile", {
      name: "hog",
      command: CHILD_HOG,
      image: "python3.11",
      schedule: undefined,
      continuous: false,
      retry: 0,
      timeout: undefined,
      mem: "64Mi",
      extra: {},
    });
    const done = await jobs.waitForRun("hostile", "hog", run_id!, STILL_RUNNING_AFTER_MS);
    expect(done?.final).toMatchObject({
      status: "failed",
      exit_code: 137,
      reason: "ran out of memory (limit 64 MiB)",
    });
    expect(done?.runs[0]!.lines).toContain(
      "slipway: the job ran out of memory (limit 64 MiB); it was stopped",
    );
    await jobs.delete("hostile", "hog");
  }, 120_000);
});
