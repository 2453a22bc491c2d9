import { randomBytes } from "node:crypto";
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pushRunImage } from "../services/adapters/oci/run-image.js";
import { podman } from "../services/adapters/podman/podman.js";
import { ensureStack } from "../services/adapters/stack/index.js";
import { readMark } from "../services/domain/lifecycle/marks.js";
import {
  LIFECYCLE_MOUNT,
  LIFECYCLE_PROGRAM,
  prepareLifecycleDir,
} from "../services/adapters/stack/lifecycle-dir.js";
import type { Stack } from "../services/domain/lifecycle/types.js";
import { memoryLogger } from "../services/platform/logger.js";
import { run } from "../services/platform/process.js";
import { FIXTURES, config } from "./helpers/buildpack-build.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";
import { startPythonIndex } from "./helpers/python-index.js";
import { serveImage } from "./helpers/serve-image.js";
import { TEST_STACK_HOME } from "./helpers/stack.js";

/**
 * slipway-lifecycle (issue 15, item 2): each phase is its own `podman run` of the stack's build image
 * with the prepared /cnb mounted read-only, as the non-root stack user with no capabilities, the way
 * the pipelines' Task steps run it. Only the export container gets the push credential.
 */
const LONG = 900_000;
const EPOCH = 1_700_000_000;

let stack: Stack;
let registry: TestRegistry;
let lifecycleDir: string;
let runImage: string;
let root: string;

beforeAll(async () => {
  stack = await ensureStack(config, memoryLogger());
  registry = await startRegistry();
  runImage = await pushRunImage(registry.client(), stack, "slipway/run");
  lifecycleDir = await prepareLifecycleDir({
    repoRoot: config.repoRoot,
    cacheDir: path.join(TEST_STACK_HOME, "lifecycle"),
  });
  await mkdir("/var/tmp/slipway-test-work", { recursive: true });
  root = await mkdtemp("/var/tmp/slipway-test-work/lp-");
}, 900_000);

afterAll(async () => {
  await registry?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

interface Workspace {
  readonly name: string;
  readonly app: string;
  readonly layers: string;
  readonly cache: string;
  /** The export step's own layer cache (the Task's layer-cache workspace), per tool like `cache`. */
  readonly layerCache: string;
  readonly results: string;
  readonly push: string;
}

/** A fresh checkout of `fixture` (plus `extra` files) with its own layers, and the tool's cache `cache`. */
async function workspace(
  fixture: string,
  cache: string,
  extra: Record<string, string> = {},
): Promise<Workspace> {
  const name = `${fixture || "app"}-${randomBytes(3).toString("hex")}`;
  const dir = path.join(root, name);
  const ws = {
    name,
    app: path.join(dir, "app"),
    layers: path.join(dir, "layers"),
    cache: path.join(root, "cache", cache),
    layerCache: path.join(root, "layer-cache", cache),
    results: path.join(dir, "results"),
    push: path.join(dir, "push"),
  };
  for (const d of [ws.app, ws.layers, ws.cache, ws.layerCache, ws.results, ws.push])
    await mkdir(d, { recursive: true });
  if (fixture) await cp(path.join(FIXTURES, fixture), ws.app, { recursive: true });
  for (const [file, content] of Object.entries(extra)) await writeFile(path.join(ws.app, file), content);
  // As the fetch step leaves them: the build user's. The credential is readable by that user only.
  const auth = Buffer.from(`${registry.username}:${registry.password}`).toString("base64");
  await writeFile(
    path.join(ws.push, "config.json"),
    JSON.stringify({ auths: { [registry.host]: { auth } } }),
  );
  await chmod(path.join(ws.push, "config.json"), 0o600);
  await run("chown", ["-R", `${stack.uid}:${stack.gid}`, dir, ws.cache, ws.layerCache]);
  return ws;
}

interface StepRun {
  readonly code: number;
  readonly output: string;
  readonly args: readonly string[];
  readonly seconds: number;
}

/** Runs one phase in its own container, as the Task step of that name does. */
async function step(
  ws: Workspace,
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<StepRun> {
  const exporting = args[0] === "export";
  const podmanArgs = [
    "run",
    "--rm",
    "--name",
    `slipway-test-lp-${args[0]}-${randomBytes(3).toString("hex")}`,
    "--user",
    `${stack.uid}:${stack.gid}`,
    "--cap-drop",
    "all",
    "--security-opt",
    "no-new-privileges",
    "--memory",
    "2048m",
    "--pids-limit",
    "2048",
    "--pull",
    "never",
    // The export reaches the test's registry on 127.0.0.1; the build steps run on podman's bridge.
    "--network",
    exporting ? "host" : "bridge",
    "--mount",
    `type=bind,source=${ws.app},destination=/workspace${exporting ? ",ro=true" : ""}`,
    "--mount",
    `type=bind,source=${ws.layers},destination=/layers${exporting ? ",ro=true" : ""}`,
    "--mount",
    `type=bind,source=${ws.results},destination=/results`,
    "--mount",
    `type=bind,source=${lifecycleDir},destination=${LIFECYCLE_MOUNT},ro=true`,
    ...(exporting
      ? [
          "--mount",
          `type=bind,source=${ws.push},destination=/push,ro=true`,
          "--env",
          "DOCKER_CONFIG=/push",
          "--mount",
          `type=bind,source=${ws.layerCache},destination=/layer-cache`,
        ]
      : [
          "--mount",
          `type=bind,source=${ws.app},destination=/app`,
          "--mount",
          `type=bind,source=${ws.cache},destination=/cache`,
          "--env",
          "SLIPWAY_CACHE_DIR=/cache",
          "--env",
          `SLIPWAY_NPM_REGISTRY=${config.npmRegistry}`,
          "--env",
          `SLIPWAY_DEBIAN_MIRROR=${config.debianMirror}`,
        ]),
    "--env",
    "SLIPWAY_APP_DIR=/workspace",
    "--env",
    "SLIPWAY_LAYERS_DIR=/layers",
    "--env",
    `SOURCE_DATE_EPOCH=${EPOCH}`,
    "--env",
    "SLIPWAY_TOOL=demo",
    "--env",
    "SLIPWAY_COMPONENT=web",
    ...Object.entries(env).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
    "--entrypoint",
    LIFECYCLE_PROGRAM,
    stack.buildImage,
    ...args,
  ];
  const started = Date.now();
  const r = await podman(podmanArgs, { repoRoot: config.repoRoot, allowFailure: true });
  return {
    code: r.code,
    output: `${r.stdout}${r.stderr}`,
    args: podmanArgs,
    seconds: (Date.now() - started) / 1000,
  };
}

/** detect, restore, build, save-cache and export, each its own container; fails on the first that fails. */
async function pipeline(ws: Workspace, tag: string) {
  const runs: Record<string, StepRun> = {};
  const steps: [string, string[]][] = [
    ["detect", ["detect"]],
    ["restore", ["restore", "--no-cache=false"]],
    ["build", ["build", "--processes-result=/results/processes"]],
    ["save-cache", ["save-cache"]],
    [
      "export",
      [
        "export",
        `--image=${registry.host}/tool-demo/web:${tag}`,
        `--run-image=${runImage}`,
        `--commit=${tag}`,
        "--source-url=https://git.example/demo.git",
        "--digest-result=/results/image-digest",
        "--image-result=/results/image",
        "--layer-cache=/layer-cache",
      ],
    ],
  ];
  for (const [name, args] of steps) {
    const r = await step(ws, args);
    runs[name] = r;
    if (r.code !== 0) throw new Error(`${name} exited with ${r.code}:\n${r.output}`);
  }
  const digest = (await readFile(path.join(ws.results, "image-digest"), "utf8")).trim();
  const image = (await readFile(path.join(ws.results, "image"), "utf8")).trim();
  const processes = JSON.parse(await readFile(path.join(ws.results, "processes"), "utf8")) as unknown;
  const uploaded = [...runs.export!.output.matchAll(/^Uploaded layer (\S+)/gm)].map((m) => m[1]);
  const fromCache = /^Layer cache: (\d+) of (\d+) /m.exec(runs.export!.output);
  const layerCache = fromCache ? { unchanged: Number(fromCache[1]), of: Number(fromCache[2]) } : undefined;
  return { runs, digest, image, processes, uploaded, layerCache };
}

/** Pulls the image by digest, runs it, and returns its answer to GET /. */
function serve(image: string, digest: string): Promise<string> {
  return serveImage(config.repoRoot, registry, image, digest);
}

/** The biggest file under `dir` (Node.js's binary, in a Node app's cache) and its inode. */
async function biggestFile(dir: string): Promise<{ file: string; ino: number }> {
  let best = { file: "", ino: 0, size: -1 };
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const info = await stat(file);
    if (info.size > best.size) best = { file, ino: info.ino, size: info.size };
  }
  return best;
}

/** Every file under `dir`, as text: the credential must be in none of them. */
async function allText(dir: string): Promise<string> {
  let out = "";
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    out += await readFile(path.join(entry.parentPath, entry.name), "latin1").catch(() => "");
  }
  return out;
}

describe("slipway-lifecycle in the build image", () => {
  it(
    "nodejs: five containers build an image that runs; the same commit again gives the same digest; a code change uploads one layer and compresses no launch layer again",
    async () => {
      const first = await pipeline(await workspace("nodejs", "nodejs"), "c1");
      expect(first.runs.detect!.output).toContain("slipway/nodejs");
      // Node.js and its modules (launch layers) and /cnb: all written the first time.
      expect(first.layerCache).toEqual({ unchanged: 0, of: expect.any(Number) });
      expect(first.layerCache!.of).toBeGreaterThanOrEqual(2);
      expect(first.processes).toEqual([{ type: "web", buildpackId: "slipway/nodejs" }]);
      expect(first.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(first.image).toBe(`${registry.host}/tool-demo/web:c1`);
      expect(await serve(first.image, first.digest)).toMatch(/^node 22 is-odd\(3\)=true\n$/);
      for (const [name, r] of Object.entries(first.runs))
        console.log(`slipway-lifecycle ${name}: ${r.seconds.toFixed(1)} s (load ${await loadAverage()})`);

      // The same commit, a fresh checkout and layers, the cache warm: the same image.
      const againWs = await workspace("nodejs", "nodejs");
      const biggest = await biggestFile(againWs.cache);
      const again = await pipeline(againWs, "c1");
      expect(again.runs.restore!.output).toContain("Restoring cached layer");
      expect(again.digest).toBe(first.digest);
      expect(again.uploaded).toEqual([]);
      // The restored layers are copies (the cache is another mount) that keep their files' mtimes: the
      // export finds every launch layer unchanged instead of compressing Node.js again.
      expect(again.layerCache).toEqual({ unchanged: first.layerCache!.of, of: first.layerCache!.of });
      // save-cache finds Node.js as it restored it and keeps the cache's own files (linked on the cache's
      // volume) instead of copying it back from the layers' volume.
      expect(again.runs["save-cache"]!.output).toMatch(
        /^Keeping cached layer slipway\/nodejs:\S+ \(unchanged\)$/m,
      );
      expect((await stat(biggest.file)).ino).toBe(biggest.ino);

      const server = await readFile(path.join(FIXTURES, "nodejs", "server.js"), "utf8");
      const changed = await pipeline(
        await workspace("nodejs", "nodejs", { "server.js": server.replace("node ${", "node v2 ${") }),
        "c2",
      );
      expect(changed.digest).not.toBe(first.digest);
      expect(changed.uploaded).toEqual(["app"]);
      expect(changed.layerCache).toEqual(again.layerCache);
      expect(await serve(changed.image, changed.digest)).toMatch(/^node v2 22 is-odd\(3\)=true\n$/);
    },
    LONG,
  );

  it(
    "python: builds and runs; the push credential is only in the export container, and in no file or image",
    async () => {
      const ws = await workspace("python", "python");
      const built = await pipeline(ws, "p1");
      expect(await serve(built.image, built.digest)).toMatch(/^python 3\.\d+\n$/);
      for (const name of ["detect", "restore", "build", "save-cache"]) {
        const args = built.runs[name]!.args.join(" ");
        expect(args).not.toContain(registry.password);
        expect(args).not.toContain("/push");
        expect(args).not.toContain("DOCKER_CONFIG");
      }
      expect(built.runs.export!.args.join(" ")).toContain(`${ws.push},destination=/push,ro=true`);
      for (const r of Object.values(built.runs)) expect(r.output).not.toContain(registry.password);
      for (const dir of [ws.app, ws.layers, ws.cache])
        expect(await allText(dir)).not.toContain(registry.password);
      const client = registry.client();
      const manifest = await client.getManifest("tool-demo/web", built.digest);
      const body = JSON.parse(Buffer.from(manifest!.body).toString("utf8")) as { config: { digest: string } };
      const imageConfig = Buffer.from(await client.getBlob("tool-demo/web", body.config.digest)).toString(
        "utf8",
      );
      expect(imageConfig).not.toContain(registry.password);
      expect(imageConfig).not.toContain(
        Buffer.from(`${registry.username}:${registry.password}`).toString("base64"),
      );
    },
    LONG,
  );

  it(
    "python: pip installs the requirements from the operator's index (SLIPWAY_PIP_INDEX_URL, the build Task's pip-index-url)",
    async () => {
      // No PyPI here: without the index setting reaching pip, this build fails.
      const index = await startPythonIndex(path.join(root, "pyindex"), ["python3-six"]);
      try {
        const ws = await workspace("python", "py-index", { "requirements.txt": "six\n" });
        const env = { SLIPWAY_PIP_INDEX_URL: index.url("host.containers.internal") };
        for (const args of [["detect"], ["restore"], ["build", "--processes-result=/results/processes"]]) {
          const r = await step(ws, args, env);
          expect(r.code, r.output).toBe(0);
        }
        const files = await readdir(ws.layers, { recursive: true });
        expect(files.some((f) => f.endsWith("site-packages/six.py"))).toBe(true);
        const bad = await step(ws, ["detect"], { SLIPWAY_PIP_INDEX_URL: "pypi.internal/simple" });
        expect(bad.code).toBe(2);
        expect(bad.output).toContain(
          'SLIPWAY_PIP_INDEX_URL must be an http(s) URL, not "pypi.internal/simple"',
        );
      } finally {
        await index.close();
      }
    },
    LONG,
  );

  it(
    "a failing buildpack ends its step non-zero, naming the phase and the buildpack",
    async () => {
      const pkg = { name: "x", version: "1.0.0", engines: { node: ">=999" } };
      const ws = await workspace("", "failing", { "package.json": JSON.stringify(pkg) });
      expect((await step(ws, ["detect"])).code).toBe(0);
      expect((await step(ws, ["restore"])).code).toBe(0);
      const failed = await step(ws, ["build", "--processes-result=/results/processes"]);
      expect(failed.code).toBe(51);
      expect(failed.output).toContain(
        'slipway-lifecycle: build failed in phase build: buildpack slipway/nodejs exited with code 1: error: no Node.js release matches package.json engines.node ">=999"',
      );
      // What a follower of the step (executor, Tekton backend) reads: which buildpack, and why.
      const marks = failed.output.split("\n").flatMap((l) => readMark(l) ?? []);
      expect(marks).toContainEqual({ buildpack: "slipway/nodejs" });
      expect(marks.at(-1)).toMatchObject({
        failure: {
          code: "build_failed",
          phase: "build",
          buildpack: "slipway/nodejs",
          message: expect.stringContaining("no Node.js release matches") as unknown,
        },
      });
      const nothing = await workspace("", "nothing", { "notes.txt": "nothing to run\n" });
      const undetected = await step(nothing, ["detect"]);
      expect(undetected.code).toBe(20);
      expect(undetected.output).toContain("no buildpack group passed detection");
      const early = await step(nothing, ["build"]);
      expect(early.code).toBe(2);
      expect(early.output).toContain("holds no detected build: run detect first");
    },
    LONG,
  );
});

async function loadAverage(): Promise<string> {
  return (await readFile("/proc/loadavg", "utf8")).split(" ")[0] ?? "?";
}
