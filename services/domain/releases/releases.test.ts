import { describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { HealthProbe } from "../../ports/probe.js";
import type { AppRuntime, RunOnceResult, RunSpec, RunningApp } from "../../ports/runtime.js";
import { MemoryStore } from "../../../test/fakes/memory-store.js";
import { testBuildOf } from "../../../test/helpers/releases.js";
import { defaultConfigFromProcfile, parseComponentsConfig } from "../config/index.js";
import type { Enqueuer } from "../../ports/queue.js";
import type { LocalImages, PulledImage } from "../../ports/local-images.js";
import { deployerOnPodman } from "./podman-rollout.js";
import type { Release } from "./release.js";
import { ReleaseService } from "./release-service.js";
import { ImageRetention } from "./retention.js";

// The deployer, rollback and image retention against the in-memory store (test/fakes), with a scripted
// runtime and probe: the decisions (what runs, what is probed, what is kept) without podman or Redis.

const store = new MemoryStore();

class FakeRuntime implements AppRuntime {
  running: RunningApp[] = [];
  started: RunSpec[] = [];
  once: { spec: Omit<RunSpec, "port" | "command">; command: string }[] = [];
  execs: string[] = [];
  onceResult: RunOnceResult = { code: 0, timedOut: false, tail: [] };
  execOk = true;
  private n = 0;
  start(spec: RunSpec): Promise<RunningApp> {
    this.started.push(spec);
    const app = {
      id: `c${++this.n}`,
      tool: spec.tool,
      process: spec.process,
      releaseId: spec.releaseId,
      replica: spec.replica,
      address: { host: "127.0.0.1", port: 1000 + this.n },
    };
    this.running.push(app);
    return Promise.resolve(app);
  }
  stop(id: string): Promise<void> {
    this.running = this.running.filter((r) => r.id !== id);
    return Promise.resolve();
  }
  list(tool?: string): Promise<RunningApp[]> {
    return Promise.resolve(this.running.filter((r) => !tool || r.tool === tool));
  }
  logs(): Promise<string[]> {
    return Promise.resolve(["app said goodbye"]);
  }
  runOnce(
    spec: Omit<RunSpec, "port" | "command">,
    command: string,
    _timeoutS: number,
    onLine?: (line: string) => void,
  ): Promise<RunOnceResult> {
    this.once.push({ spec, command });
    for (const l of this.onceResult.tail) onLine?.(l);
    return Promise.resolve(this.onceResult);
  }
  exec(_id: string, command: string): Promise<{ ok: boolean; output: string }> {
    this.execs.push(command);
    return Promise.resolve({ ok: this.execOk, output: this.execOk ? "" : "redis not reachable" });
  }
}

const logLines: string[] = [];
const logs = {
  append: (_id: string, line: string) => {
    logLines.push(line);
    return Promise.resolve();
  },
} as unknown as BuildLogs;

function deployer(
  runtime: FakeRuntime,
  probe: HealthProbe,
  extra: Partial<Parameters<typeof deployerOnPodman>[0]> = {},
) {
  return deployerOnPodman({
    store,
    runtime,
    probe,
    logs,
    logger: memoryLogger(),
    options: { healthTimeoutS: 1, memoryMb: 512, drainMs: 0 },
    ...extra,
  });
}

let seq = 0;
async function release(tool: string, extra: Partial<Release> = {}): Promise<Release> {
  const id = `r${++seq}`;
  const r: Release = {
    id,
    tool,
    component: "web",
    build_id: `b${seq}`,
    commit: seq.toString(16).padStart(40, "0"),
    image: `127.0.0.1:5000/tool-${tool}/web:${seq}`,
    image_digest: `sha256:${seq.toString(16).padStart(64, "0")}`,
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status: "deploying",
    // In the past, so a release made now (a rollback) is the newest.
    created_at: new Date(Date.now() - 60_000 + seq).toISOString(),
    ...extra,
  };
  await store.createBuild(testBuildOf(r, "success"));
  await store.createRelease(r);
  return r;
}

const okProbe: HealthProbe = { probe: () => Promise.resolve({ ok: true, detail: "answered on TCP" }) };

const config = (run: string) =>
  parseComponentsConfig(
    `config_version: v1beta1\ncomponents:\n  web:\n    run:\n      command: web\n${run}`,
    "slipway.yaml",
  );

describe("Deployer with a components config", () => {
  it("runs each replica of web on run.port with PORT, run.memory, probes each and routes to all", async () => {
    const runtime = new FakeRuntime();
    const probed: (string | undefined)[] = [];
    const probe: HealthProbe = {
      probe: (_a, path) => {
        probed.push(path);
        return Promise.resolve({ ok: true, detail: `HTTP 204 from ${path}` });
      },
    };
    const r = await release("cfg", {
      config: config(
        "      port: 9000\n      memory: 1Gi\n      replicas: 3\n      health_check_http: /ready\n",
      ),
    });
    await deployer(runtime, probe).deploy(r.id, new AbortController().signal);
    expect(runtime.started.map((s) => s.replica)).toEqual([0, 1, 2]);
    expect(runtime.started[2]).toMatchObject({ port: 9000, memoryMb: 1024, env: { PORT: "9000" } });
    expect(runtime.started[0]!.command).toBeUndefined();
    expect(probed).toEqual(["/ready", "/ready", "/ready"]);
    expect(await store.getRelease(r.id)).toMatchObject({
      status: "live",
      last_probe: "HTTP 204 from /ready (each of 3 replicas)",
    });
    expect((await store.getRoute("cfg"))?.upstreams?.map((u) => u.port)).toEqual(
      runtime.running.map((a) => a.address.port),
    );
    expect(logLines).toContain("===> STARTING 3 replicas of the web process");
  });

  it("one replica failing its health check fails the release, stops its replicas and keeps the old route", async () => {
    const runtime = new FakeRuntime();
    const old = await release("halfbad");
    await deployer(runtime, okProbe).deploy(old.id, new AbortController().signal);
    const oldRoute = await store.getRoute("halfbad");
    const oldApps = [...runtime.running];
    // The second new replica (port 1003) never answers.
    const probe: HealthProbe = {
      probe: (a) =>
        Promise.resolve(
          a.port === 1003
            ? { ok: false, detail: "HTTP 500 from /" }
            : { ok: true, detail: "HTTP 200 from /" },
        ),
    };
    const r = await release("halfbad", { config: config("      replicas: 2\n") });
    await deployer(runtime, probe).deploy(r.id, new AbortController().signal);
    const after = (await store.getRelease(r.id))!;
    expect(after.status).toBe("failed");
    expect(after.reason).toMatch(/^web process \(replica 1 of 2\) did not pass its health check/);
    expect(after.last_probe).toBe("replica 1: HTTP 500 from /");
    expect(await store.getRoute("halfbad")).toEqual(oldRoute);
    expect(runtime.running).toEqual(oldApps);
  });

  it("limits CPU to run.cpu when the file sets it, else to the server's default", async () => {
    const runtime = new FakeRuntime();
    runtime.onceResult = { code: 0, timedOut: false, tail: [] };
    const given = await release("cpu", {
      config: config("      cpu: 250m\n"),
      processes: ["web", "release"],
    });
    const d = deployer(runtime, okProbe, {
      options: { healthTimeoutS: 1, memoryMb: 512, cpus: 0.5, drainMs: 0 },
    });
    await d.deploy(given.id, new AbortController().signal);
    expect(runtime.once[0]?.spec.cpus).toBe(0.25);
    expect(runtime.started[0]?.cpus).toBe(0.25);
    const unset = await release("cpu", { config: config("") });
    await d.deploy(unset.id, new AbortController().signal);
    expect(runtime.started[1]?.cpus).toBe(0.5);
  });

  it("reconcile starts the missing replicas of the live release and routes to all of them", async () => {
    const runtime = new FakeRuntime();
    const r = await release("heal", { config: config("      replicas: 3\n") });
    const d = deployer(runtime, okProbe);
    await d.deploy(r.id, new AbortController().signal);
    // Two of the three containers went away (a reboot, `podman rm`).
    await runtime.stop(runtime.running[0]!.id);
    await runtime.stop(runtime.running[1]!.id);
    await d.reconcile(["heal"]);
    expect(runtime.running.map((a) => a.replica).sort()).toEqual([0, 1, 2]);
    const route = (await store.getRoute("heal"))!;
    expect(route.release_id).toBe(r.id);
    expect(new Set(route.upstreams?.map((u) => u.port))).toEqual(
      new Set(runtime.running.map((a) => a.address.port)),
    );
  });

  it("health_check_script runs in the container and its failure fails the release with its output", async () => {
    const runtime = new FakeRuntime();
    runtime.execOk = false;
    const r = await release("script", { config: config("      health_check_script: ./check.sh\n") });
    await deployer(runtime, okProbe).deploy(r.id, new AbortController().signal);
    expect(runtime.execs[0]).toBe("./check.sh");
    const after = (await store.getRelease(r.id))!;
    expect(after.status).toBe("failed");
    expect(after.last_probe).toBe("health_check_script failed: redis not reachable");
    expect(after.reason).toContain("(last probe: health_check_script failed: redis not reachable)");
    expect(runtime.running).toEqual([]);
  });

  it("a release phase that times out fails the release before web starts", async () => {
    const runtime = new FakeRuntime();
    runtime.onceResult = { code: undefined, timedOut: true, tail: ["migrating…"] };
    const r = await release("phase", {
      processes: ["web", "release"],
      config: defaultConfigFromProcfile(["web", "release"]),
    });
    await deployer(runtime, okProbe, {
      options: { healthTimeoutS: 1, memoryMb: 512, drainMs: 0, releasePhaseTimeoutS: 7 },
    }).deploy(r.id, new AbortController().signal);
    expect(runtime.once[0]).toMatchObject({
      command: "release",
      spec: { env: { PORT: "8000" }, process: "release" },
    });
    expect(runtime.started).toEqual([]);
    expect(await store.getRelease(r.id)).toMatchObject({
      status: "failed",
      reason: "release phase did not finish within 7 s; nothing was serving before",
      log_tail: ["migrating…"],
    });
  });

  it("a release phase stopped at its memory limit says so, not just exit 137", async () => {
    const runtime = new FakeRuntime();
    runtime.onceResult = {
      code: 137,
      timedOut: false,
      tail: ["loading everything"],
      exceeded: { kind: "memory", limitMb: 512 },
    };
    const r = await release("phase-oom", {
      processes: ["web", "release"],
      config: defaultConfigFromProcfile(["web", "release"]),
    });
    await deployer(runtime, okProbe).deploy(r.id, new AbortController().signal);
    expect(runtime.started).toEqual([]);
    expect(await store.getRelease(r.id)).toMatchObject({
      status: "failed",
      reason: "release phase ran out of memory (limit 512 MiB); nothing was serving before",
    });
  });
});

describe("rollback and image retention", () => {
  const queued: unknown[] = [];
  const queue: Enqueuer = {
    enqueue: (_n, payload) => {
      queued.push(payload);
      return Promise.resolve();
    },
    removeWaiting: () => Promise.resolve(false),
  };

  it("rollback makes a new release of the previous live one, skips its release phase, and retention spares its image", async () => {
    const runtime = new FakeRuntime();
    const deleted: string[] = [];
    const retention = new ImageRetention({
      store,
      registry: {
        deleteManifest: (repo, digest) => {
          deleted.push(`${repo}@${digest}`);
          return Promise.resolve(true);
        },
      },
      keep: 2,
      logger: memoryLogger(),
    });
    const d = deployer(runtime, okProbe, { retention });
    const tool = "rb";
    const v1 = await release(tool, { processes: ["web", "release"] });
    await d.deploy(v1.id, new AbortController().signal);
    const broken = await release(tool);
    await store.updateRelease(broken.id, { status: "failed" });
    const v2 = await release(tool);
    await d.deploy(v2.id, new AbortController().signal);
    expect(runtime.once).toHaveLength(1);

    const service = new ReleaseService({ store, queue, keepReleases: 2 });
    const rb = await service.rollback(tool, undefined, "admin");
    expect(rb).toMatchObject({
      rollback_of: v1.id,
      image_digest: v1.image_digest,
      trigger: { kind: "rollback" },
    });
    expect(queued).toContainEqual({ build_id: v1.build_id, release_id: rb.id });
    await d.deploy(rb.id, new AbortController().signal);
    expect(runtime.once).toHaveLength(1); // no release phase on rollback
    expect((await service.list(tool))[0]).toMatchObject({ id: rb.id, live: true, status: "live" });

    // Live: rb (v1's image), then v2: the two kept. The failed release is older, and its image goes.
    expect(deleted).toEqual([`tool-rb/web@${broken.image_digest}`]);
    expect((await store.getRelease(broken.id))!.image_deleted_at).toBeDefined();
    expect((await store.getRelease(v1.id))!.image_deleted_at).toBeUndefined();
    await expect(service.rollback(tool, broken.id, "admin")).rejects.toThrow(
      /cannot be rolled back to: its image was deleted .* by image retention/,
    );
    await expect(service.rollback(tool, rb.id, "admin")).rejects.toThrow(`release ${rb.id} is already live`);
    await expect(service.rollback("nothing-here", undefined, "admin")).rejects.toThrow(
      "nothing-here has no earlier live release to roll back to",
    );
  });

  it("retention removes the machine's pulled copies of releases it no longer keeps, except one a container uses", async () => {
    const runtime = new FakeRuntime();
    const local = new FakeLocalImages();
    const retention = new ImageRetention({
      store,
      registry: { deleteManifest: () => Promise.resolve(true) },
      keep: 2,
      logger: memoryLogger(),
      local,
    });
    const d = deployer(runtime, okProbe, { retention });
    const tool = "pulled";
    // A copy left by a pass that found a job run still using it, and one a stopped container holds.
    local.pull("sha256:old-left-by-an-earlier-pass");
    local.pull("sha256:old-a-stopped-container-uses", true);
    const releases: Release[] = [];
    for (let n = 0; n < 4; n++) {
      const r = await release(tool);
      local.pull(r.image_digest);
      await d.deploy(r.id, new AbortController().signal);
      releases.push(r);
    }
    const [, , v3, v4] = releases;
    expect(local.digests()).toEqual(
      [v3!.image_digest, v4!.image_digest, "sha256:old-a-stopped-container-uses"].sort(),
    );
  });

  it("a runtime whose pulled copies cannot be listed still gets its release live", async () => {
    const local = new FakeLocalImages();
    local.failing = true;
    const retention = new ImageRetention({
      store,
      registry: { deleteManifest: () => Promise.resolve(true) },
      keep: 1,
      logger: memoryLogger(),
      local,
    });
    const d = deployer(new FakeRuntime(), okProbe, { retention });
    const r = await release("unlisted");
    await d.deploy(r.id, new AbortController().signal);
    expect(await store.getRelease(r.id)).toMatchObject({ status: "live" });
  });
});

/** Podman's image store as retention sees it: images by digest, some used by a container. */
class FakeLocalImages implements LocalImages {
  failing = false;
  private readonly images = new Map<string, PulledImage>();
  pull(digest: string, inUse = false): void {
    this.images.set(`id-${digest}`, { id: `id-${digest}`, digests: [digest], inUse });
  }
  digests(): string[] {
    return [...this.images.values()].flatMap((i) => i.digests).sort();
  }
  pulled(): Promise<PulledImage[]> {
    if (this.failing) return Promise.reject(new Error("podman: image not known"));
    return Promise.resolve([...this.images.values()]);
  }
  discard(id: string): Promise<boolean> {
    return Promise.resolve(this.images.delete(id));
  }
}
