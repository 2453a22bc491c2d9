import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BuildSandboxes } from "../../ports/sandbox.js";
import { memoryLogger } from "../../platform/logger.js";
import { MemoryBuilders, type MemoryBuilderRegistry } from "../../../test/fakes/memory-builders.js";
import { MemoryStore } from "../../../test/fakes/memory-store.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { Build, Trigger } from "../builds/build.js";
import type { LifecycleResult } from "../lifecycle/types.js";
import { ToolService } from "../tools/tool-service.js";
import { BuildControl } from "./build-control.js";
import { BuildRecovery } from "./build-recovery.js";
import { PipelineError } from "../../platform/errors.js";
import { BuildPipeline } from "./build-pipeline.js";
import { lifecycleBackend } from "./local-backend.js";
import type { LifecycleRunner } from "../../ports/build-steps.js";
import type { Enqueuer } from "../../ports/queue.js";
import { TriggerService } from "./triggers.js";

// The pipeline with the in-memory store (test/fakes) and fake fetch/buildpacks/export: what slipway.yaml decides
// (deploy policy, config problems, the config kept on the release) without the cost of a real build.

const store = new MemoryStore();
let work: string;
const queued: { name: string; payload: unknown }[] = [];
const logLines = new Map<string, string[]>();

const queue: Enqueuer = {
  enqueue: (name, payload) => {
    queued.push({ name, payload });
    return Promise.resolve();
  },
  removeWaiting: () => Promise.resolve(false),
};

const logs = {
  append: (id: string, line: string) => {
    logLines.set(id, [...(logLines.get(id) ?? []), line]);
    return Promise.resolve();
  },
} as unknown as BuildLogs;

/** The files each commit holds, keyed by commit id. */
const commits = new Map<string, Record<string, string>>();

const fakeLifecycle: LifecycleRunner = {
  run: (input) =>
    Promise.resolve({
      group: [],
      processes: [
        { type: "web", command: ["node"], args: ["server.js"], default: true, buildpackId: "x" },
        { type: "release", command: ["node"], args: ["migrate.js"], default: false, buildpackId: "x" },
      ],
      layers: [],
      appDir: input.appDir,
      cnbDir: input.workDir,
      labels: [],
    } satisfies LifecycleResult),
};

function pipeline(
  extra: Partial<ConstructorParameters<typeof BuildPipeline>[0]> & { lifecycle?: LifecycleRunner } = {},
): BuildPipeline {
  const { lifecycle = fakeLifecycle, ...rest } = extra;
  return new BuildPipeline({
    store,
    logs,
    queue,
    fetcher: {
      async fetch(request, dest) {
        for (const [name, text] of Object.entries(commits.get(request.commit) ?? {})) {
          await mkdir(path.dirname(path.join(dest, name)), { recursive: true });
          await writeFile(path.join(dest, name), text);
        }
        return { commit: request.commit, commitTime: 1_700_000_000 };
      },
    },
    backend: lifecycleBackend(lifecycle, {
      export: (input) =>
        Promise.resolve({
          image: `127.0.0.1:5000/${input.repository}:${input.tag}`,
          digest: `sha256:${"a".repeat(64)}`,
          blobsUploaded: 0,
        }),
    }),
    workRoot: work,
    logger: memoryLogger(),
    timeoutS: 60,
    ...rest,
  });
}

let n = 0;
function commit(files: Record<string, string>): string {
  const sha = (++n).toString(16).padStart(40, "0");
  commits.set(sha, files);
  return sha;
}

async function newTool() {
  const tools = new ToolService(store, { publicUrl: "http://s", webUrl: (t) => `http://${t}.localhost/` });
  return (await tools.create(`t${++n}`)).name;
}

/** A push of `sha` through the trigger service, from the door `kind` (API and redeploy are explicit). */
async function trigger(tool: string, sha: string, kind: Trigger["kind"], ref = "refs/heads/main") {
  return new TriggerService(store, memoryLogger()).push({
    tool: (await store.getTool(tool))!,
    ref,
    commit: sha,
    sourceUrl: "http://s/git/x.git",
    defaultBranch: "main",
    trigger: { kind, ref },
    explicit: kind === "api" || kind === "redeploy",
  });
}

/** A push through the trigger service (as a webhook or git push), built at once if it was queued. */
async function push(tool: string, ref: string, sha: string, lifecycle?: LifecycleRunner) {
  const result = await trigger(tool, sha, "git_push", ref);
  if (result.status !== "queued") return { result, build: undefined };
  await pipeline(lifecycle ? { lifecycle } : {}).run(result.build_id, {
    signal: new AbortController().signal,
    finalAttempt: true,
  });
  return { result, build: (await store.getBuild(result.build_id)) as Build };
}

const WEB = "config_version: v1beta1\ncomponents:\n  web:\n    run:\n      command: web\n";

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), "slipway-pipeline-"));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe("slipway.yaml in the pipeline", () => {
  it("deploy only tags v*: a branch push is not deployed and says why; the tag of the same commit deploys", async () => {
    const tool = await newTool();
    const sha = commit({ "slipway.yaml": `${WEB}deploy: { branches: [], tags: ["v*"] }\n` });

    const first = await push(tool, "refs/heads/main", sha);
    expect(first.build?.status).toBe("cancelled");
    expect(first.build?.reason).toBe(
      "not deployed: branch main ignored: deploy.branches is [] in slipway.yaml, so no branch deploys",
    );
    expect(logLines.get(first.build!.id)).toContain(
      "===> DEPLOY POLICY from slipway.yaml: branches none; tags v*",
    );
    expect(
      queued.some(
        (q) => q.name === "deploy" && (q.payload as { build_id: string }).build_id === first.build!.id,
      ),
    ).toBe(false);

    // The webhook now answers from the stored policy, before fetching anything.
    const again = await push(tool, "refs/heads/main", sha);
    expect(again.result).toEqual({
      status: "ignored",
      reason: "branch main ignored: deploy.branches is [] in slipway.yaml, so no branch deploys",
    });

    const tag = await push(tool, "refs/tags/v1.0", sha);
    expect(tag.result).toMatchObject({ status: "queued", reason: 'tag v1.0 matches deploy.tags "v*"' });
    expect(tag.build?.status).toBe("deploying");
    const other = await push(tool, "refs/tags/nightly", sha);
    expect(other.result).toEqual({
      status: "ignored",
      reason: "tag nightly matches no deploy.tags rule (v*)",
    });
  });

  it("deploy only from release/*: main is not deployed, release/2.0 is, and the release keeps the config", async () => {
    const tool = await newTool();
    const sha = commit({ "slipway.yaml": `${WEB}deploy: { branches: ["release/*"] }\n` });
    const main = await push(tool, "refs/heads/main", sha);
    expect(main.build?.status).toBe("cancelled");
    expect(main.build?.reason).toBe("not deployed: branch main matches no deploy.branches rule (release/*)");

    const rel = await push(tool, "refs/heads/release/2.0", sha);
    expect(rel.result).toMatchObject({
      status: "queued",
      reason: 'branch release/2.0 matches deploy.branches "release/*"',
    });
    expect(rel.build?.status).toBe("deploying");
    const release = (await store.getRelease(rel.build!.release_id!))!;
    expect(Object.keys(release.config!.components)).toEqual(["web"]);
    expect(release.config!.deploy.branches).toEqual(["release/*"]);
    expect(release.processes).toEqual(["web", "release"]);
    expect(queued).toContainEqual({
      name: "deploy",
      payload: { build_id: rel.build!.id, release_id: release.id },
    });

    // Removing the file goes back to the default: the default branch deploys again.
    const plain = commit({ Procfile: "web: node server.js\n" });
    const forced = await trigger(tool, plain, "api");
    await pipeline().run((forced as { build_id: string }).build_id, {
      signal: new AbortController().signal,
      finalAttempt: true,
    });
    expect((await store.getTool(tool))!.deploy).toEqual({ branches: [], tags: [] });
    const next = commit({ Procfile: "web: node server.js\n", "x.txt": "2" });
    expect((await push(tool, "refs/heads/main", next)).build?.status).toBe("deploying");
  });

  it("an invalid slipway.yaml fails the build in phase config, naming file, line and field of every problem", async () => {
    const tool = await newTool();
    const sha = commit({
      "slipway.yaml":
        "config_version: v1beta1\ncomponents:\n  web:\n    run:\n      command: web\n      port: 99999\n      replicas: 0\n",
    });
    const { build } = await push(tool, "refs/heads/main", sha);
    expect(build?.status).toBe("failure");
    expect(build?.phase).toBe("config");
    expect(build?.reason).toContain(
      "slipway.yaml:6:7: components.web.run.port: expected a number from 1 to 65535, got 99999",
    );
    expect(build?.reason).toContain(
      "slipway.yaml:7:7: components.web.run.replicas: expected a whole number from 1 to 8, got 0",
    );
    expect(build?.log_tail).toHaveLength(2);
  });

  it("a component built from another repository fails clearly (not supported yet)", async () => {
    const tool = await newTool();
    const sha = commit({
      "slipway.yaml": `${WEB}  redis:\n    build:\n      repository: https://example.org/redis.git\n    run:\n      command: redis-server\n`,
    });
    const { build } = await push(tool, "refs/heads/main", sha);
    expect(build?.status).toBe("failure");
    expect(build?.phase).toBe("config");
    expect(build?.reason).toContain(
      "components.redis.build.repository: building another repository (https://example.org/redis.git) is not supported by Slipway yet",
    );
  });
});

describe("a build whose builder died", () => {
  const world = new MemoryBuilders();
  /** The sandboxes the recovery (or cancel) removed: [build, builder]. */
  const removed: [string, string | undefined][] = [];
  const sandboxes: BuildSandboxes = {
    list: () => Promise.resolve([]),
    remove: (id, builder) => {
      removed.push([id, builder]);
      return Promise.resolve();
    },
  };
  let builders: MemoryBuilderRegistry;
  let recovery: BuildRecovery;
  const run = (id: string) =>
    pipeline({ builders, recovery }).run(id, { signal: new AbortController().signal, finalAttempt: true });

  beforeAll(() => {
    builders = world.start();
    recovery = new BuildRecovery({ store, logs, builders, sandboxes, queue, logger: memoryLogger() });
  });
  afterAll(async () => {
    await builders?.close();
  });

  /** A pushed build left `running` in `phase` by builder `builder` (as a kill -9 leaves it). */
  async function orphan(phase: Build["phase"], builder: string, restarts?: number) {
    const tool = await newTool();
    const sha = commit({ Procfile: "web: node server.js\n" });
    const id = ((await trigger(tool, sha, "git_push")) as { build_id: string }).build_id;
    await store.updateBuild(id, { status: "running", phase, reason: "building", builder, restarts });
    return { tool, sha, id };
  }

  it("is built again from the start, once, and the dead builder's sandbox is removed", async () => {
    const { id } = await orphan("build", "dead-builder-1");
    await run(id);
    const build = (await store.getBuild(id))!;
    expect(build.status).toBe("deploying");
    expect(build.restarts).toBe(1);
    expect(build.builder).toBe(builders.id);
    expect(removed).toContainEqual([id, "dead-builder-1"]);
    expect(logLines.get(id)).toContain(
      `===> RESTARTING: the builder restarted during phase build; building ${build.commit} again from the start`,
    );
  });

  it("fails when its builder died during the re-run too, says so, and frees the commit", async () => {
    const { tool, sha, id } = await orphan("export", "dead-builder-2", 1);
    await run(id);
    const build = (await store.getBuild(id))!;
    expect(build.status).toBe("failure");
    expect(build.phase).toBe("export");
    expect(build.reason).toMatch(/^builder restarted during phase export; .*run `build start`/);
    expect(removed).toContainEqual([id, "dead-builder-2"]);
    // The commit is not answered "duplicate" by the failed build: building it again is queued.
    const again = await trigger(tool, sha, "redeploy");
    expect(again.status).toBe("queued");
  });

  it("is left alone while its builder's heartbeat lives (a job delivered twice)", async () => {
    const other = world.start();
    try {
      const { id } = await orphan("build", other.id);
      await run(id);
      expect((await store.getBuild(id))!).toMatchObject({ status: "running", builder: other.id });
      expect(removed.some(([b]) => b === id)).toBe(false);
    } finally {
      await other.close();
    }
  });

  it("is found by the sweep once its builder's heartbeat stopped, and queued for recovery once", async () => {
    const dead = world.start();
    const { id } = await orphan("detect", dead.id);
    await dead.took(id);
    await dead.close();
    queued.length = 0;
    expect(await recovery.sweep()).toBe(1);
    expect(await recovery.sweep()).toBe(0);
    expect(queued).toEqual([
      { name: "build", payload: { build_id: id, tool: expect.any(String) as string } },
    ]);
  });

  it("a run whose build another builder took over (it looked dead) stops and writes nothing", async () => {
    const { id } = await orphan("build", builders.id);
    await store.updateBuild(id, { status: "pending" });
    await pipeline({
      builders,
      recovery,
      cancelPollMs: 20,
      lifecycle: {
        run: async ({ signal }) => {
          // Another builder's recovery and re-run, while this run still works.
          await store.takeOverBuild(id, builders.id, { status: "pending", builder: undefined, restarts: 1 });
          await store.startBuild(id, { status: "running", builder: "other-builder" });
          await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
          throw new Error("podman exec: container replaced");
        },
      },
    }).run(id, { signal: new AbortController().signal, finalAttempt: true });
    expect((await store.getBuild(id))!).toMatchObject({ status: "running", builder: "other-builder" });
    expect(logLines.get(id)?.some((l) => /FAILED|CANCELLED/.test(l))).toBe(false);
  });

  it("build cancel ends it and removes its sandbox; a failing step afterwards does not overwrite that", async () => {
    const { id } = await orphan("build", "dead-builder-3");
    const cancelled = await new BuildControl(store, queue, sandboxes).cancel(id);
    expect(cancelled.status).toBe("cancelled");
    expect(removed).toContainEqual([id, undefined]);

    // A live builder's step fails once its sandbox is gone; the build stays cancelled.
    const { id: live } = await orphan("build", builders.id);
    await store.updateBuild(live, { status: "pending" });
    await pipeline({
      builders,
      recovery,
      lifecycle: {
        run: async () => {
          await new BuildControl(store, queue, sandboxes).cancel(live);
          throw new Error("podman exec: container removed");
        },
      },
    }).run(live, { signal: new AbortController().signal, finalAttempt: true });
    expect((await store.getBuild(live))!).toMatchObject({
      status: "cancelled",
      reason: "cancelled by request",
    });
  });
});

describe("a build stopped at its container's limit", () => {
  it("has the limit as its reason, with phase and buildpack, not the buildpack's last words", async () => {
    const tool = await newTool();
    const sha = commit({ Procfile: "web: node server.js\n" });
    const { build } = await push(tool, "refs/heads/main", sha, {
      run: (input) => {
        input.onLog("===> BUILDING");
        input.onLog("hog: killed, again");
        return Promise.reject(
          new PipelineError("build_failed", "build ran out of memory (limit 2048 MiB)", {
            details: {
              phase: "build",
              buildpack: "me/hog",
              exit_code: 137,
              limit: { kind: "memory", limitMb: 2048 },
            },
          }),
        );
      },
    });
    expect(build).toMatchObject({
      status: "failure",
      phase: "build",
      buildpack: "me/hog",
      reason: "build failed in me/hog: build ran out of memory (limit 2048 MiB)",
    });
  });
});

describe("phases", () => {
  it("come from the backend's phase events, not from lines in the log that look like markers", async () => {
    const tool = await newTool();
    const sha = commit({ Procfile: "web: node server.js\n" });
    const { build } = await push(tool, "refs/heads/main", sha, {
      run: (input) => {
        input.onPhase?.("detect");
        input.onPhase?.("build");
        // A buildpack's own output that happens to read like a phase marker moves nothing.
        input.onLog("===> EXPORTING the assets");
        return Promise.reject(new PipelineError("build_failed", "npm run build exited with 1"));
      },
    });
    expect(build).toMatchObject({ status: "failure", phase: "build" });
    expect(build?.reason).toMatch(/^build failed/);
  });

  it("a backend other than the local one reports its own phases and the image's processes", async () => {
    const tool = await newTool();
    const sha = commit({ Procfile: "web: node server.js\nworker: node worker.js\n" });
    const triggered = await trigger(tool, sha, "git_push");
    if (triggered.status !== "queued") throw new Error("not queued");
    const seen: string[] = [];
    await pipeline({
      backend: {
        build: (request, { onLog, onPhase }) => {
          seen.push(request.repository, request.tag, request.ref);
          onPhase("detect");
          onLog("step-detect: slipway/procfile");
          onPhase("export");
          return Promise.resolve({
            image: `registry.example/${request.repository}:${request.tag}`,
            digest: `sha256:${"b".repeat(64)}`,
            processes: [
              { type: "web", buildpackId: "slipway/procfile" },
              { type: "worker", buildpackId: "slipway/procfile" },
            ],
          });
        },
      },
    }).run(triggered.build_id, { signal: new AbortController().signal, finalAttempt: true });
    const build = await store.getBuild(triggered.build_id);
    expect(seen).toEqual([`tool-${tool}/web`, sha, "refs/heads/main"]);
    expect(build).toMatchObject({ status: "deploying", image_digest: `sha256:${"b".repeat(64)}` });
    const lines = logLines.get(triggered.build_id) ?? [];
    expect(lines).toContain(`Image registry.example/tool-${tool}/web:${sha}@sha256:${"b".repeat(64)}`);
    expect(lines.find((l) => l.startsWith("Timings:"))).toMatch(/detect .* export .* total/);
  });
});

describe("what the backend starts ahead", () => {
  /** A lifecycle that notes when it is told to prepare, run and let go, beside the fetch. */
  function noting(events: string[]): LifecycleRunner {
    return {
      prepare: (request) => {
        events.push(`prepare ${path.basename(request.appDir)}`);
        return {
          release: () => {
            events.push("release");
            return Promise.resolve();
          },
        };
      },
      run: (input) => {
        events.push("run");
        return fakeLifecycle.run(input);
      },
    };
  }

  function fetcher(
    events: string[],
    fail = false,
  ): ConstructorParameters<typeof BuildPipeline>[0]["fetcher"] {
    return {
      async fetch(request, dest) {
        events.push("fetch");
        if (fail) throw new PipelineError("source_fetch_failed", "the repository answered 500");
        for (const [name, text] of Object.entries(commits.get(request.commit) ?? {}))
          await writeFile(path.join(dest, name), text);
        return { commit: request.commit, commitTime: 1_700_000_000 };
      },
    };
  }

  async function run(tool: string, sha: string, events: string[], fail = false, ref = "refs/heads/main") {
    const triggered = await trigger(tool, sha, "git_push", ref);
    if (triggered.status !== "queued") throw new Error("not queued");
    await pipeline({ lifecycle: noting(events), fetcher: fetcher(events, fail) }).run(triggered.build_id, {
      signal: new AbortController().signal,
      finalAttempt: true,
    });
    return (await store.getBuild(triggered.build_id)) as Build;
  }

  it("is asked for before the fetch, with the build's app directory, and let go after the build", async () => {
    const events: string[] = [];
    const build = await run(await newTool(), commit({ Procfile: "web: node server.js\n" }), events);
    expect(build.status).toBe("deploying");
    expect(events).toEqual(["prepare app", "fetch", "run", "release"]);
  });

  it("is let go when the fetch fails, and when the deploy policy stops the push before any build", async () => {
    const failed: string[] = [];
    expect((await run(await newTool(), commit({}), failed, true)).status).toBe("failure");
    expect(failed).toEqual(["prepare app", "fetch", "release"]);

    const stopped: string[] = [];
    const sha = commit({ "slipway.yaml": `${WEB}deploy: { branches: [], tags: ["v*"] }\n` });
    expect((await run(await newTool(), sha, stopped)).status).toBe("cancelled");
    expect(stopped).toEqual(["prepare app", "fetch", "release"]);
  });
});
