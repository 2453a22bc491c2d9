import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TektonBackend, readPipelines } from "../services/adapters/tekton/backend.js";
import { runName, type TektonBuildSettings } from "../services/adapters/tekton/pipeline-run.js";
import type { BuildPhase, BuildRequest } from "../services/ports/build-backend.js";
import { PipelineError, SlipwayError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { BuildPipeline } from "../services/domain/pipeline/build-pipeline.js";
import { buildpackMark, failureMark } from "../services/domain/lifecycle/marks.js";
import type { BuildLogs } from "../services/ports/logs.js";
import { MemoryStore } from "./fakes/memory-store.js";
import { kubeAssets, startKubeCluster, type KubeCluster } from "./helpers/kube-cluster.js";
import {
  TektonStandIn,
  createBuildsNamespace,
  installTektonCrds,
  queuedPush,
  type RunPlay,
} from "./helpers/tekton-controller.js";

// The Tekton build backend against a real kube-apiserver with Tekton's CRDs installed: every object
// Slipway makes (the Tasks and Pipeline of pipelines/, one PipelineRun per build) must be accepted as
// written, and the build pods made from the Tasks must pass Pod Security `restricted`. No Tekton
// controller runs here; test/helpers/tekton-controller.ts plays it (TaskRuns, pods, status, results).

const assets = kubeAssets();
if (assets.skip) console.warn(`tekton-real tests skipped: ${assets.skip}`);

const repoRoot = path.resolve(import.meta.dirname, "..");
const NS = "slipway-builds";
const DIGEST = `sha256:${"c".repeat(64)}`;
const SETTINGS: TektonBuildSettings = {
  namespace: NS,
  registry: "harbor.example",
  buildImage: "harbor.example/slipway/build:bookworm",
  runImage: "harbor.example/slipway/run:bookworm",
  fetchImage: "harbor.example/slipway/git:2",
  pushSecret: "registry-push",
  memoryMb: 1536,
  cpus: 1,
  timeoutS: 600,
  cacheSize: "2Gi",
  workspaceSize: "1Gi",
  uid: 1000,
  gid: 1000,
  mirrors: { npmRegistry: "https://npm.internal/", pipIndexUrl: "http://pypi.internal/simple/" },
};

let n = 0;
function request(): BuildRequest {
  const buildId = `01jtekton${(++n).toString().padStart(4, "0")}`;
  return {
    buildId,
    tool: "hello",
    component: "web",
    commit: "a".repeat(40),
    ref: "refs/heads/main",
    sourceUrl: "https://forge.example/hello.git",
    appDir: "/nonexistent",
    workDir: "/nonexistent",
    sourceDateEpoch: 1_700_000_000,
    noCache: false,
    repository: "tool-hello/web",
    tag: "a".repeat(40),
  };
}

describe.skipIf(assets.skip !== undefined)("builds as Tekton PipelineRuns on a real API server", () => {
  let cluster: KubeCluster;
  let standIn: TektonStandIn;
  let backend: TektonBackend;
  const plays = new Map<string, RunPlay>();

  beforeAll(async () => {
    cluster = await startKubeCluster();
    await installTektonCrds(cluster);
    await createBuildsNamespace(cluster, NS, "registry-push");
    standIn = new TektonStandIn(cluster, NS, (run) => plays.get(run.metadata.name) ?? {});
    standIn.start();
    backend = await TektonBackend.start(
      cluster.kubeConfig("admin"),
      { ...SETTINGS, pipelinesDir: path.join(repoRoot, "pipelines"), pollMs: 150 },
      memoryLogger(),
    );
  }, 180_000);

  afterAll(async () => {
    await standIn?.stop();
    await cluster?.stop();
  });

  async function build(play: RunPlay, abortWhen?: (phase: BuildPhase) => boolean) {
    const req = request();
    plays.set(runName(req.buildId), play);
    const lines: string[] = [];
    const phases: BuildPhase[] = [];
    const controller = new AbortController();
    const outcome = await backend
      .build(req, {
        onLog: (l) => lines.push(l),
        onPhase: (p) => {
          phases.push(p);
          if (abortWhen?.(p))
            setTimeout(() => controller.abort(new SlipwayError("cancelled", "cancelled by request")), 400);
        },
        signal: controller.signal,
      })
      .then(
        (image) => ({ image, error: undefined }),
        (error: unknown) => ({ image: undefined, error }),
      );
    const run = await cluster.api<{
      metadata: { labels: Record<string, string> };
      spec: Record<string, unknown>;
    }>("GET", `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns/${runName(req.buildId)}`);
    return { req, lines, phases, run, ...outcome };
  }

  it("applies pipelines/ at start: the server keeps every field of the Tasks and the Pipeline, managed by slipway", async () => {
    const objects = await readPipelines(path.join(repoRoot, "pipelines"));
    expect(objects.map((o) => `${o.kind}/${o.metadata!.name}`).sort()).toEqual([
      "Pipeline/slipway-build",
      "Task/slipway-build",
      "Task/slipway-export",
      "Task/slipway-fetch",
    ]);
    for (const o of objects) {
      const plural = o.kind === "Task" ? "tasks" : "pipelines";
      const stored = await cluster.api<{
        spec: unknown;
        metadata: { managedFields: { manager: string; operation: string }[] };
      }>("GET", `/apis/tekton.dev/v1/namespaces/${NS}/${plural}/${o.metadata!.name}`);
      // A field the CRD schema does not know would be pruned silently: what is stored is what was sent.
      expect(stored.spec).toEqual((o as unknown as { spec: unknown }).spec);
      expect(stored.metadata.managedFields).toContainEqual(
        expect.objectContaining({ manager: "slipway", operation: "Apply" }),
      );
    }
  });

  it("a build: one PipelineRun with the build's labels and limits, its steps' logs in order, phases as events, the digest as result", async () => {
    const processes = JSON.stringify([{ type: "web", buildpackId: "slipway/procfile" }]);
    const { req, lines, phases, run, image, error } = await build({
      steps: { "build/detect": { logs: ["slipway/procfile 0.1.0", "slipway/python 0.3.0"] } },
      results: {
        "export/image-digest": DIGEST,
        "export/image": "harbor.example/tool-hello/web:aaaa",
        "build/processes": processes,
      },
    });
    expect(error).toBeUndefined();
    expect(image).toMatchObject({
      digest: DIGEST,
      image: "harbor.example/tool-hello/web:aaaa",
      processes: [{ type: "web", buildpackId: "slipway/procfile" }],
    });
    expect(Object.keys(image!.phaseTimings ?? {})).toEqual(
      expect.arrayContaining(["detect", "build", "export"]),
    );
    expect(lines).toEqual([
      "fetch/fetch: ok",
      "slipway/procfile 0.1.0",
      "slipway/python 0.3.0",
      "build/restore: ok",
      "build/build: ok",
      "build/save-cache: ok",
      "export/export: ok",
    ]);
    expect(phases).toEqual(["detect", "restore", "build", "export"]);
    expect(run.metadata.labels).toMatchObject({
      "slipway.dev/tool": "hello",
      "slipway.dev/build": req.buildId,
    });
    expect(run.spec).toMatchObject({
      pipelineRef: { name: "slipway-build" },
      timeouts: { pipeline: "600s" },
      params: expect.arrayContaining([
        { name: "commit", value: req.commit },
        { name: "image", value: `harbor.example/tool-hello/web:${req.tag}` },
        // The operator's package mirrors reach the build Task's steps; an unset one is the public one.
        { name: "npm-registry", value: "https://npm.internal/" },
        { name: "debian-mirror", value: "" },
        { name: "pip-index-url", value: "http://pypi.internal/simple/" },
      ]),
      taskRunSpecs: [
        {
          pipelineTaskName: "build",
          stepSpecs: [{ name: "build", computeResources: { limits: { memory: "1536Mi", cpu: "1" } } }],
        },
      ],
      // The component's claim holds the build cache and the export's layer cache in two directories:
      // the build Task, which runs buildpack code, cannot reach the layers the export takes as unchanged.
      workspaces: expect.arrayContaining([
        { name: "cache", subPath: "build", persistentVolumeClaim: { claimName: "cache-hello-web" } },
        { name: "layer-cache", subPath: "export", persistentVolumeClaim: { claimName: "cache-hello-web" } },
      ]),
    });
    // The Tasks' pods, unprivileged as written, passed Pod Security `restricted` of the builds namespace.
    expect(standIn.refused).toEqual([]);
    expect(standIn.pods.filter((p) => p.startsWith(runName(req.buildId)))).toHaveLength(3);
    // The tool component's cache claim exists for the next build.
    await cluster.api("GET", `/api/v1/namespaces/${NS}/persistentvolumeclaims/cache-hello-web`);
  }, 60_000);

  it("a step that fails: the build fails in that step's phase, with its exit code and its last lines", async () => {
    const { error, lines } = await build({
      steps: {
        "build/detect": {
          exitCode: 1,
          logs: ["no buildpack group passed detection", "tried: slipway/python"],
        },
      },
    });
    expect(error).toBeInstanceOf(PipelineError);
    const e = error as PipelineError;
    expect(e.code).toBe("detect_failed");
    expect(e.message).toBe("step build/detect exited with code 1");
    expect(e.details).toMatchObject({
      phase: "detect",
      step: "build/detect",
      exit_code: 1,
      log_tail: ["no buildpack group passed detection", "tried: slipway/python"],
    });
    expect(lines).not.toContain("build/restore: ok");
  }, 60_000);

  it("a step that says why it failed (slipway-lifecycle's marks): its message and buildpack, the marks kept out of the log", async () => {
    const procfile = new PipelineError(
      "build_failed",
      "build failed in phase build: buildpack slipway/procfile exited with code 1: error: Procfile line 1: no colon",
      {
        details: {
          phase: "build",
          buildpack: "slipway/procfile",
          exit_code: 1,
          log_tail: ["error: Procfile line 1: no colon"],
        },
      },
    );
    const { error, lines } = await build({
      steps: {
        "build/build": {
          exitCode: 51,
          logs: [
            buildpackMark("slipway/procfile"),
            "error: Procfile line 1: no colon",
            `slipway-lifecycle: ${procfile.message}`,
            failureMark(procfile),
          ],
        },
      },
    });
    const e = error as PipelineError;
    expect(e.code).toBe("build_failed");
    expect(e.message).toBe(procfile.message);
    expect(e.details).toMatchObject({
      phase: "build",
      step: "build/build",
      buildpack: "slipway/procfile",
      exit_code: 1,
      log_tail: ["error: Procfile line 1: no colon"],
    });
    expect(lines).toContain("error: Procfile line 1: no colon");
    expect(lines.filter((l) => l.startsWith("::slipway::"))).toEqual([]);
  }, 60_000);

  it("an app's Python picks the cluster's stack: 3.13 runs with the trixie images, a Python no stack has fails in detect and makes no run", async () => {
    const bookworm = {
      suite: "bookworm",
      python: "3.11",
      buildImage: SETTINGS.buildImage,
      runImage: SETTINGS.runImage,
    };
    const trixie = {
      suite: "trixie",
      python: "3.13",
      buildImage: "harbor.example/slipway/build:trixie",
      runImage: "harbor.example/slipway/run:trixie",
    };
    const start = (suites: (typeof bookworm)[]) =>
      TektonBackend.start(
        cluster.kubeConfig("admin"),
        { ...SETTINGS, pipelinesDir: path.join(repoRoot, "pipelines"), pollMs: 150, suites },
        memoryLogger(),
      );
    const appDir = await mkdtemp(path.join(os.tmpdir(), "slipway-tekton-app-"));
    const attempt = async (backend: TektonBackend) => {
      const req = { ...request(), appDir };
      plays.set(runName(req.buildId), {
        results: { "export/image-digest": DIGEST, "export/image": "harbor.example/tool-hello/web:aaaa" },
      });
      const lines: string[] = [];
      const outcome = await backend
        .build(req, { onLog: (l) => lines.push(l), onPhase: () => {}, signal: new AbortController().signal })
        .catch((e: unknown) => e);
      const run = await cluster
        .api<{ spec: { params: { name: string; value: string }[] } }>(
          "GET",
          `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns/${runName(req.buildId)}`,
        )
        .catch((e: unknown) => String(e));
      return { outcome, lines, run };
    };
    try {
      await writeFile(path.join(appDir, ".python-version"), "3.13\n");
      const both = await attempt(await start([bookworm, trixie]));
      expect(both.outcome).toMatchObject({ digest: DIGEST });
      expect(both.lines).toContain(
        ".python-version asks for Python 3.13: building on the Debian trixie stack",
      );
      const params = Object.fromEntries(
        (typeof both.run === "string" ? [] : both.run.spec.params).map((p) => [p.name, p.value]),
      );
      expect(params).toMatchObject({ "build-image": trixie.buildImage, "run-image": trixie.runImage });

      const onlyBookworm = await attempt(await start([bookworm]));
      const error = onlyBookworm.outcome as PipelineError;
      expect(error).toBeInstanceOf(PipelineError);
      expect(error.code).toBe("detect_failed");
      expect(error.message).toMatch(
        /^\.python-version asks for Python 3\.13, which Slipway does not have: change \.python-version to 3\.11\.\nAvailable: Python 3\.11 \(Debian bookworm\)/,
      );
      expect(onlyBookworm.lines[0]).toMatch(/^error: \.python-version asks for Python 3\.13/);
      expect(onlyBookworm.run).toContain(" 404 ");
    } finally {
      await rm(appDir, { recursive: true, force: true });
    }
  }, 90_000);

  it("a build step OOMKilled fails as out of memory; a run out of time as out of time", async () => {
    const oom = await build({
      steps: {
        "build/build": {
          exitCode: 137,
          reason: "OOMKilled",
          logs: [buildpackMark("slipway/python"), "Collecting numpy", "Killed"],
        },
      },
    });
    expect((oom.error as PipelineError).message).toContain("ran out of memory");
    expect((oom.error as PipelineError).details).toMatchObject({
      phase: "build",
      // Killed before it could say anything: named by the buildpack it was building.
      buildpack: "slipway/python",
      limit: { kind: "memory" },
      log_tail: ["Collecting numpy", "Killed"],
    });
    const late = await build({ timeoutAt: "export/export" });
    expect((late.error as PipelineError).code).toBe("export_failed");
    expect((late.error as PipelineError).message).toContain("ran out of time");
    expect((late.error as PipelineError).details).toMatchObject({ phase: "export", limit: { kind: "time" } });
  }, 90_000);

  it("a cancelled build cancels its PipelineRun (spec.status Cancelled) and ends as cancelled", async () => {
    const { error, run, phases } = await build({ hangAt: "build/build" }, (p) => p === "build");
    expect(phases).toEqual(["detect", "restore", "build"]);
    expect(error).toBeInstanceOf(SlipwayError);
    expect((error as SlipwayError).code).toBe("cancelled");
    expect(run.spec.status).toBe("Cancelled");
  }, 60_000);

  it("through the build pipeline: the tool's credential reaches only its run's Secret, and a failed step becomes the build's reason and log tail", async () => {
    const store = new MemoryStore();
    const logLines = new Map<string, string[]>();
    const withCredential = await TektonBackend.start(
      cluster.kubeConfig("admin"),
      {
        ...SETTINGS,
        pipelinesDir: path.join(repoRoot, "pipelines"),
        pollMs: 150,
        credential: () => Promise.resolve({ username: "deploy", password: "t0ken" }),
      },
      memoryLogger(),
    );
    const work = await mkdtemp(path.join(os.tmpdir(), "slipway-tekton-"));
    const pipeline = new BuildPipeline({
      store,
      logs: {
        append: (id: string, line: string) => {
          logLines.set(id, [...(logLines.get(id) ?? []), line]);
          return Promise.resolve();
        },
      } as unknown as BuildLogs,
      queue: { enqueue: () => Promise.resolve(), removeWaiting: () => Promise.resolve(false) },
      fetcher: { fetch: (request) => Promise.resolve({ commit: request.commit, commitTime: 1_700_000_000 }) },
      backend: withCredential,
      workRoot: work,
      logger: memoryLogger(),
      timeoutS: 120,
    });
    const pushed = { build_id: await queuedPush(store, "hello", "b".repeat(40)) };
    const name = runName(pushed.build_id);
    plays.set(name, {
      steps: {
        "build/build": { exitCode: 1, logs: ["ERROR: No matching distribution found for numpy==9.9"] },
      },
    });
    try {
      await pipeline.run(pushed.build_id, { signal: new AbortController().signal, finalAttempt: true });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    const build = (await store.getBuild(pushed.build_id))!;
    expect(build).toMatchObject({
      status: "failure",
      phase: "build",
      reason: "build failed: step build/build exited with code 1",
      log_tail: ["ERROR: No matching distribution found for numpy==9.9"],
    });
    expect(logLines.get(pushed.build_id)).toContain("build/detect: ok");
    // The source credential existed for the run and is gone once the build ended.
    expect(standIn.secretsSeen.get(name)).toEqual([`${name}-source`, "registry-push"]);
    const after = await cluster.api("GET", `/api/v1/namespaces/${NS}/secrets/${name}-source`).then(
      () => "still there",
      (e: unknown) => String(e),
    );
    expect(after).toContain(" 404 ");
  }, 60_000);
});
