import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushRunImage } from "../services/adapters/oci/run-image.js";
import { podman } from "../services/adapters/podman/podman.js";
import { PodmanBuildSandbox } from "../services/adapters/podman/sandbox.js";
import { SUITES, ensureStack } from "../services/adapters/stack/index.js";
import { prepareLifecycleDir } from "../services/adapters/stack/lifecycle-dir.js";
import { lifecycleOverlay, pipelinesBackend } from "../services/adapters/tekton-local/backend.js";
import { parseDefinitions } from "../services/adapters/tekton-local/definitions.js";
import { readPipelineFiles } from "../services/adapters/tekton/pipelines-dir.js";
import type { Stack } from "../services/domain/lifecycle/types.js";
import { loadConfig } from "../services/platform/env.js";
import { PipelineError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import type { BuildBackend, BuildPhase, BuildRequest } from "../services/ports/build-backend.js";
import { git, gitRepo } from "./helpers/apps.js";
import { gitHttpBackend } from "./helpers/git-http.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";
import { serveImage } from "./helpers/serve-image.js";
import { TEST_STACK_HOME } from "./helpers/stack.js";

/**
 * SLIPWAY_BUILD_BACKEND=pipelines end to end on this machine: `pipelines/pipeline.yaml` as written,
 * fetch (git over HTTP with the deploy credential), detect/restore/build/save-cache (slipway-lifecycle
 * in the stack's build image) and export (to a real registry), each TaskRun a podman container and each
 * step a `podman exec` in it; the pushed image is pulled by digest, run, and answers HTTP.
 */
const config = loadConfig({ ...process.env, SLIPWAY_HOME: TEST_STACK_HOME });
const FIXTURES = path.join(config.repoRoot, "test", "fixtures", "apps");
const DEPLOY_USER = "deploy-token-9";
const DEPLOY_PASSWORD = "pipelines-backend-s3cr3t-0123456789";

let stack: Stack;
let registry: TestRegistry;
let server: Server;
let reposDir: string;
let base: string;
let root: string;
let backend: BuildBackend;

beforeAll(async () => {
  stack = await ensureStack(config, memoryLogger());
  registry = await startRegistry();
  const runImage = await pushRunImage(registry.client(), stack, "slipway/run");
  const lifecycleDir = await prepareLifecycleDir({
    repoRoot: config.repoRoot,
    cacheDir: path.join(TEST_STACK_HOME, "lifecycle"),
  });
  await mkdir("/var/tmp/slipway-test-work", { recursive: true });
  root = await mkdtemp("/var/tmp/slipway-test-work/pipelines-");
  reposDir = path.join(root, "repos");
  const app = express();
  app.use(gitHttpBackend(reposDir, (user, password) => user === DEPLOY_USER && password === DEPLOY_PASSWORD));
  server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  backend = pipelinesBackend({
    definitions: parseDefinitions(await readPipelineFiles(path.join(config.repoRoot, "pipelines"))),
    // The default stack only: the python-versions suite covers another stack through pipelines/.
    suites: SUITES.slice(0, 1),
    images: () => Promise.resolve({ build: stack.buildImage, run: runImage }),
    registry: { host: registry.host, username: registry.username, password: registry.password },
    user: { uid: stack.uid, gid: stack.gid },
    memoryMb: 2048,
    cpus: 2,
    timeoutS: 600,
    cacheDir: (tool, component) => path.join(root, "cache", tool, component),
    layerCacheDir: (repository) => path.join(root, "layer-cache", repository),
    // fetch and export reach this test's git server and registry on loopback; build runs on podman's bridge.
    sandbox: (_tool, task) =>
      Promise.resolve(
        PodmanBuildSandbox.create(
          { repoRoot: config.repoRoot, owner: "slipway-build-test" },
          task === "build" ? "bridge" : "host",
        ),
      ),
    imageOverlay: lifecycleOverlay(lifecycleDir),
    mirrors: config,
    credential: () => Promise.resolve({ username: DEPLOY_USER, password: DEPLOY_PASSWORD }),
  });
}, 900_000);

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await registry?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** Runs `script` with sh in the pushed image (pulled by digest), as the image's user. */
async function inImage(image: string, digest: string, script: string) {
  const ref = `${image.replace(/:[^:/]+$/, "")}@${digest}`;
  const opts = { repoRoot: config.repoRoot };
  await podman(
    ["pull", "--quiet", "--tls-verify=false", "--creds", `${registry.username}:${registry.password}`, ref],
    opts,
  );
  try {
    return await podman(["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", ref, "-c", script], {
      ...opts,
      allowFailure: true,
    });
  } finally {
    await podman(["rmi", "-f", ref], { ...opts, allowFailure: true });
  }
}

/** A repository of `fixture` on the git server; builds its commit through the backend. */
async function build(fixture: string, files: Record<string, string> = {}) {
  const work = await gitRepo(files, fixture ? path.join(FIXTURES, fixture) : undefined);
  const commit = (await git(work.dir, ["rev-parse", "HEAD"])).trim();
  const name = `${fixture || "empty"}-${randomBytes(3).toString("hex")}`;
  await git(root, ["clone", "-q", "--bare", work.dir, path.join(reposDir, `group/${name}.git`)]);
  const workDir = path.join(root, "work", name);
  await mkdir(workDir, { recursive: true });
  const request: BuildRequest = {
    buildId: randomBytes(6).toString("hex"),
    tool: "demo",
    component: name,
    commit,
    ref: "refs/heads/main",
    sourceUrl: `${base}/group/${name}.git`,
    appDir: work.dir,
    workDir,
    sourceDateEpoch: 1_700_000_000,
    noCache: false,
    repository: `tool-demo/${name}`,
    tag: commit,
  };
  const lines: string[] = [];
  const phases: BuildPhase[] = [];
  const result = backend.build(request, {
    onLog: (l) => lines.push(l),
    onPhase: (p) => phases.push(p),
    signal: new AbortController().signal,
  });
  return { result, lines, phases, commit };
}

describe("SLIPWAY_BUILD_BACKEND=pipelines builds fixture apps with pipelines/ as written", () => {
  // Every fixture the podman backend deploys (test/buildpack-apps.test.ts), each through the same
  // backend and registry: what it answers where a user would look.
  it.each([
    ["nodejs", "/", /^node \d+ is-odd\(3\)=true\n$/],
    ["python", "/", /^python 3\.\d+\n$/],
    ["php", "/", /^php 8 CLI-SERVER\n$/],
    ["go", "/", /^built with go1\.\d+/],
    ["static", "/", /hello from the static fixture/],
    ["procfile", "/hello.txt", /^served by a Procfile command\n$/],
    ["mixed", "/app.js", /built by Node\.js 22/],
    ["vite-svelte", "/", /<div id="app"><\/div>/],
    ["apt-jq", "/jq", /^\{"sum":6\}\n$/],
  ])(
    "%s: fetched, built and exported by the Tasks; the image runs and answers %s",
    async (fixture, requestPath, answer) => {
      const { result, lines, phases } = await build(fixture);
      const built = await result;
      expect(phases).toEqual(["detect", "restore", "build", "export"]);
      expect(built.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(built.processes.map((p) => p.type)).toContain("web");
      expect(Object.keys(built.phaseTimings ?? {}).sort()).toEqual([
        "build",
        "detect",
        "export",
        "fetch",
        "restore",
      ]);
      expect(lines.join("\n")).not.toContain(DEPLOY_PASSWORD);
      expect(lines.join("\n")).not.toContain(registry.password);
      expect(await serveImage(config.repoRoot, registry, built.image, built.digest, requestPath)).toMatch(
        answer,
      );
      if (fixture === "nodejs" || fixture === "python") {
        // The layout of a local build: the buildpacks' layers at /layers, the app at /workspace, nothing
        // at the workspace paths the Tasks' pods would otherwise have built under.
        const listing = await inImage(
          built.image,
          built.digest,
          "ls /layers; ls /workspace; ls -d /workspace/source",
        );
        expect(listing.stdout).toMatch(new RegExp(`^\\S*${fixture}\\S*$`, "m"));
        expect(listing.stdout).toMatch(/^(server\.js|app\.py)$/m);
        expect(listing.stderr).toContain("/workspace/source");
      }
    },
    900_000,
  );

  it("an app nothing detects fails in build/detect as detect_failed, with the step's last lines", async () => {
    const { result } = await build("", { "notes.txt": "nothing to run\n" });
    const error = (await result.catch((e: unknown) => e)) as PipelineError;
    expect(error).toBeInstanceOf(PipelineError);
    expect(error.code).toBe("detect_failed");
    expect(error.details?.step).toBe("build/detect");
    expect((error.details?.log_tail as string[]).length).toBeGreaterThan(0);
  }, 300_000);
});
