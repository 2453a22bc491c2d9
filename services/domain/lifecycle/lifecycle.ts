import { chmod, lchown, lstat, mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import {
  chmodSync,
  copyFileSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  utimesSync,
} from "node:fs";
import path from "node:path";
import { stringify } from "smol-toml";
import { readFileConfined, readdirConfined, writeFileConfined } from "../../platform/confined-fs.js";
import { InputError, PipelineError, SlipwayError, errorMessage } from "../../platform/errors.js";
import { describeLimit } from "../../ports/limits.js";
import type { BuildSandbox, Sandbox, SandboxSpec } from "../../ports/sandbox.js";
import { type BuildpackDescriptor, escapeId, parseBuildpackToml } from "./buildpack.js";
import { unusedBuildVariableWarnings } from "./configurations.js";
import { failureCause } from "./failure-cause.js";
import { ENV_NAME, type EnvFile, applyEnvOps, envOpsFromFiles, layerPathOps } from "./env.js";
import {
  type LaunchEnvLayer,
  type LaunchToml,
  mergeProcesses,
  parseLaunchToml,
  renderCnbScripts,
} from "./launch.js";
import { type LayerToml, layerNames, parseLayerToml, restoredLayerToml } from "./layers.js";
import {
  type DetectOutcome,
  type OrderGroup,
  type PlanEntry,
  type ResolvedGroup,
  parseBuildPlan,
  resolveOrder,
} from "./order.js";
import {
  PROJECT_FILE,
  parseProjectToml,
  projectOrder,
  pruneAppDir,
  writeInlineBuildpack,
} from "./project.js";
import { requestedSuite } from "./python-version.js";
import type { GroupEntry, LaunchLayer, LifecycleResult, Stack, StackCatalogue } from "./types.js";

/** Where things live inside the build container, and in the app image. */
export const APP_DIR = "/workspace";
/** The app's path on Heroku and Dokku: the same directory, so apps and scripts that assume it work. */
export const HEROKU_APP_DIR = "/app";
export const LAYERS_DIR = "/layers";
const PLATFORM_DIR = "/platform";
const BUILDPACKS_DIR = "/cnb/buildpacks";
/** Helpers shared by several buildpacks (buildpacks/lib), read-only in the sandbox. */
export const CNB_LIB_DIR = "/cnb/lib";
/** Scratch space of this platform inside the layers dir: build plans. Not a layer (the name starts with a dot). */
const SCRATCH = ".slipway";
const CA_FILE = "/etc/ssl/certs/ca-certificates.crt";
const LOG_TAIL = 30;

export interface LifecycleInput {
  readonly sandbox: BuildSandbox;
  readonly stack: Stack;
  /**
   * Other stacks an app may choose by asking for their Python (`.python-version` and the like);
   * `stack` is the default. Without it every app builds on `stack`.
   */
  readonly stacks?: StackCatalogue | undefined;
  /** Host directories of the available buildpacks, each holding a `buildpack.toml`. */
  readonly buildpacks: readonly string[];
  /** Detect order by buildpack id; by default one group of every buildpack, in the given order, all optional. */
  readonly order?: readonly OrderGroup[] | undefined;
  /** The checked-out source; buildpacks build it in place. */
  readonly appDir: string;
  /** A directory for this build only: `layers/`, `platform/` and `cnb/` are created in it. */
  readonly workDir: string;
  /**
   * The sandbox runs on this process's own file system (slipway-lifecycle inside the build image):
   * buildpacks see every directory at its host path, the layers are `layersDir` (the build's
   * `platform/`, `cnb/` and inline buildpacks go in its scratch) and `workDir` is unused.
   */
  readonly inPlace?: { readonly layersDir: string } | undefined;
  /** Persistent cache of this tool and component: cache layers are restored from and saved to it. */
  readonly cacheDir: string;
  /** Skip restoring the cache (it is still saved afterwards, so the next build is warm again). */
  readonly noCache: boolean;
  /** User build environment, written to `<platform>/env/` and exported to buildpacks. */
  readonly env: Readonly<Record<string, string>>;
  /** Commit time in seconds: buildpacks pass it to tools for reproducible output. */
  readonly sourceDateEpoch: number;
  /** `pids`: processes at once; the sandbox's default when absent. */
  readonly limits: { readonly memoryMb: number; readonly cpus: number; readonly pids?: number | undefined };
  /** npm registry the nodejs buildpack and npm use (`npm_config_registry`). */
  readonly npmRegistry?: string | undefined;
  /** Host directory of helpers shared by buildpacks, mounted at /cnb/lib (Debian package unpacking). */
  readonly libDir?: string | undefined;
  /** Debian mirror the php and go buildpacks download packages from (`SLIPWAY_DEBIAN_MIRROR`). */
  readonly debianMirror?: string | undefined;
  /** Name of the build container. */
  readonly name: string;
  /** The build this runs for, labelled on the container (see SandboxSpec.buildId). */
  readonly buildId?: string | undefined;
  /** Aborting (timeout, cancel) stops the running step and fails the build. */
  readonly signal?: AbortSignal | undefined;
  readonly onLog: (line: string) => void;
  /** Told as detect, restore and build start (the `===>` lines are for the reader only). */
  readonly onPhase?: ((phase: "detect" | "restore" | "build") => void) | undefined;
  /** Told as each buildpack's build starts: what a step's follower names when the step is killed. */
  readonly onBuildpack?: ((id: string) => void) | undefined;
}

interface Buildpack {
  readonly descriptor: BuildpackDescriptor;
  readonly hostDir: string;
  readonly dir: string;
  readonly escaped: string;
}

/** The build's directories on the host, and the paths its buildpacks see them at. */
interface Layout {
  readonly layers: string;
  readonly platform: string;
  readonly cnb: string;
  readonly inlineBuildpacks: string;
  readonly seen: { readonly app: string; readonly layers: string; readonly platform: string };
  /** Where the sandbox sees a buildpack of `hostDir`. */
  buildpackDir(hostDir: string, escaped: string, version: string): string;
}

function layoutOf(input: Pick<LifecycleInput, "inPlace" | "workDir" | "appDir">): Layout {
  if (input.inPlace) {
    const layers = input.inPlace.layersDir;
    const platform = path.join(layers, SCRATCH, "platform");
    return {
      layers,
      platform,
      cnb: path.join(layers, SCRATCH, "cnb"),
      inlineBuildpacks: path.join(layers, SCRATCH, "inline-buildpacks"),
      seen: { app: input.appDir, layers, platform },
      buildpackDir: (hostDir) => hostDir,
    };
  }
  return {
    layers: path.join(input.workDir, "layers"),
    platform: path.join(input.workDir, "platform"),
    cnb: path.join(input.workDir, "cnb"),
    inlineBuildpacks: path.join(input.workDir, "inline-buildpacks"),
    seen: { app: APP_DIR, layers: LAYERS_DIR, platform: PLATFORM_DIR },
    buildpackDir: (_hostDir, escaped, version) => `${BUILDPACKS_DIR}/${escaped}/${version}`,
  };
}

/** A build between its phases: the input with project.toml's env and the chosen stack, its buildpacks. */
interface PreparedBuild {
  readonly input: LifecycleInput;
  readonly buildpacks: Map<string, Buildpack>;
  readonly order: readonly OrderGroup[];
  readonly layout: Layout;
  /** Host directories of the app's inline buildpacks (project.toml), written by detect. */
  readonly inline: readonly string[];
}

/**
 * What one phase hands the next when each runs as its own process (`slipway-lifecycle`): kept in the
 * layers' scratch directory, which is not a layer and is never exported.
 */
export interface LifecycleState {
  readonly env: Readonly<Record<string, string>>;
  readonly inline: readonly string[];
  readonly group: ResolvedGroup;
  readonly result?: LifecycleResult | undefined;
}

/**
 * Runs detect, restore and build for one app (spec `platform.md` §detector, §restorer, §builder) in
 * one sandbox from the stack's build image, then computes what the exporter needs: the launch layers,
 * the processes and the `/cnb` launcher scripts. Throws PipelineError (`detect_failed`,
 * `build_failed`, `cancelled`) with the phase, buildpack, exit code and last log lines.
 */
export async function runLifecycle(lifecycleInput: LifecycleInput): Promise<LifecycleResult> {
  const build = await detectPrepare(lifecycleInput);
  const sandbox = await startSandbox(build);
  try {
    const step = stepRunner(sandbox, build.input, build.layout);
    const group = await detectGroup(build, step);
    await restorePhase(build, group);
    const built = await buildPhase(build, group, step);
    await saveCachePhase(build, group, built.layersByBp);
    const result = await finishBuild(build, group, built);
    await rm(path.join(build.layout.layers, SCRATCH), { recursive: true, force: true });
    return result;
  } finally {
    await sandbox.close();
  }
}

/**
 * One phase of the lifecycle in its own process, on this process's file system (`inPlace`), as the
 * CNB lifecycle binary runs in the build image: `detect` starts the build and writes the state the
 * later phases read from the layers' scratch; `build` also computes the processes and launcher
 * scripts the exporter needs. Returns the state after the phase.
 */
export async function runLifecyclePhase(
  phase: "detect" | "restore" | "build" | "save-cache",
  input: LifecycleInput,
): Promise<LifecycleState> {
  if (!input.inPlace) throw new InputError("a lifecycle phase of its own runs in place only");
  if (phase === "detect") {
    const build = await detectPrepare(input);
    const sandbox = await startSandbox(build);
    try {
      const group = await detectGroup(build, stepRunner(sandbox, build.input, build.layout));
      const state: LifecycleState = { env: build.input.env, inline: build.inline, group };
      await writeState(build.layout, state);
      return state;
    } finally {
      await sandbox.close();
    }
  }
  const layout = layoutOf(input);
  const state = await readState(layout);
  const build: PreparedBuild = {
    input: { ...input, env: state.env },
    buildpacks: await loadBuildpacks([...input.buildpacks, ...state.inline], layout),
    order: [],
    layout,
    inline: state.inline,
  };
  if (phase === "restore") {
    await restorePhase(build, state.group);
    return state;
  }
  const groupBps = state.group.buildpacks.map((g) => buildpackOf(build, g.id));
  if (phase === "save-cache") {
    const layersByBp = new Map<string, Map<string, LayerToml>>();
    for (const bp of groupBps)
      layersByBp.set(bp.descriptor.id, await readLayers(layout.layers, bp.escaped, bp.descriptor.id));
    await saveCachePhase(build, state.group, layersByBp);
    return state;
  }
  const sandbox = await startSandbox(build);
  try {
    const built = await buildPhase(build, state.group, stepRunner(sandbox, build.input, layout));
    const next: LifecycleState = { ...state, result: await finishBuild(build, state.group, built) };
    await writeState(layout, next);
    return next;
  } finally {
    await sandbox.close();
  }
}

/** The state the phases before left (see LifecycleState); a missing one names the phase to run first. */
export async function readLifecycleState(layersDir: string): Promise<LifecycleState> {
  return readState({ layers: layersDir });
}

const STATE_FILE = `${SCRATCH}/state.json`;

async function writeState(layout: Pick<Layout, "layers">, state: LifecycleState): Promise<void> {
  await writeFile(path.join(layout.layers, STATE_FILE), JSON.stringify(state));
}

async function readState(layout: Pick<Layout, "layers">): Promise<LifecycleState> {
  let text;
  try {
    text = await readFile(path.join(layout.layers, STATE_FILE), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    throw new InputError(
      `${layout.layers} holds no detected build: run detect first (then restore and build)`,
    );
  }
  return JSON.parse(text) as LifecycleState;
}

function buildpackOf(build: PreparedBuild, id: string): Buildpack {
  const bp = build.buildpacks.get(id);
  if (!bp) throw new PipelineError("build_failed", `buildpack ${id} of the detected group is not available`);
  return bp;
}

/** Reads the buildpacks and project.toml, chooses the stack and makes the build's directories. */
async function detectPrepare(lifecycleInput: LifecycleInput): Promise<PreparedBuild> {
  // Before project.toml and the sandbox start: both belong to detect (its failures and its time).
  lifecycleInput.onPhase?.("detect");
  lifecycleInput.onLog("===> DETECTING");
  const layout = layoutOf(lifecycleInput);
  await clearDirs(layout);
  const buildpacks = await loadBuildpacks(lifecycleInput.buildpacks, layout);
  const project = await applyProject(lifecycleInput, buildpacks, layout);
  // project.toml's build env is platform env with the lowest precedence: the caller's env wins.
  const withEnv: LifecycleInput = { ...lifecycleInput, env: { ...project.buildEnv, ...lifecycleInput.env } };
  // After project.toml: its build env may carry BP_CPYTHON_VERSION.
  const input: LifecycleInput = { ...withEnv, stack: await selectStack(withEnv) };
  const order = project.order ??
    input.order ?? [
      { group: [...buildpacks.values()].map((b) => ({ id: b.descriptor.id, optional: true })) },
    ];
  await prepareDirs(input, layout);
  return { input, buildpacks, order, layout, inline: project.inline };
}

function startSandbox(build: PreparedBuild): Promise<Sandbox> {
  return build.input.sandbox.start(sandboxSpec(build));
}

/**
 * The sandbox a build of `input` will ask for if its app chooses neither another stack nor inline
 * buildpacks (project.toml), with the directories it mounts made: for starting it while the source is
 * still being fetched (WarmSandbox). The build itself compares and starts another if it differs.
 */
export async function expectedSandboxSpec(input: SandboxInput): Promise<SandboxSpec> {
  const layout = layoutOf(input);
  await mkdir(layout.layers, { recursive: true });
  await mkdir(layout.platform, { recursive: true });
  return sandboxSpec({ input, layout, buildpacks: await loadBuildpacks(input.buildpacks, layout) });
}

/** What of a build's input its sandbox depends on. */
export type SandboxInput = Pick<
  LifecycleInput,
  "inPlace" | "workDir" | "appDir" | "buildpacks" | "name" | "buildId" | "stack" | "limits" | "libDir"
>;

function sandboxSpec(build: {
  readonly input: SandboxInput;
  readonly layout: Layout;
  readonly buildpacks: Map<string, Buildpack>;
}): SandboxSpec {
  const { input, layout, buildpacks } = build;
  return {
    name: input.name,
    buildId: input.buildId,
    image: input.stack.buildImage,
    user: `${input.stack.uid}:${input.stack.gid}`,
    memoryMb: input.limits.memoryMb,
    pids: input.limits.pids,
    cpus: input.limits.cpus,
    env: {},
    mounts: [
      { host: input.appDir, container: layout.seen.app, readOnly: false },
      { host: input.appDir, container: HEROKU_APP_DIR, readOnly: false },
      { host: layout.layers, container: layout.seen.layers, readOnly: false },
      { host: layout.platform, container: layout.seen.platform, readOnly: true },
      ...[...buildpacks.values()].map((b) => ({ host: b.hostDir, container: b.dir, readOnly: true })),
      ...(input.libDir ? [{ host: input.libDir, container: CNB_LIB_DIR, readOnly: true }] : []),
    ],
  };
}

function envFor(build: PreparedBuild, bp: Buildpack): Record<string, string> {
  const baseEnv = baseEnvironment(build.input);
  if (bp.descriptor.clearEnv) return baseEnv;
  const userEnv = Object.fromEntries(
    Object.entries(build.input.env).filter(([k]) => ENV_NAME.test(k) && !k.startsWith("CNB_")),
  );
  return { ...baseEnv, ...userEnv };
}

async function detectGroup(
  build: PreparedBuild,
  step: ReturnType<typeof stepRunner>,
): Promise<ResolvedGroup> {
  const { input, buildpacks, order, layout } = build;
  const tried: { id: string; result: string; output: string[] }[] = [];
  const ids = [...new Set(order.flatMap((g) => g.group.map((e) => e.id)))];
  for (const id of ids) {
    if (!buildpacks.has(id))
      throw new PipelineError("detect_failed", `the detect order names ${id}, which is not available`);
  }
  const detected = await detectAll(
    step,
    layout,
    ids.map((id) => buildpacks.get(id)!),
    (bp) => ({ ...envFor(build, bp), ...cnbVars(bp, layout) }),
    input.stack,
  );
  const outcome = (id: string): DetectOutcome => {
    const { exitCode, output, plan } = detected.get(id)!;
    const result = exitCode === 0 ? "pass" : exitCode === 100 ? "fail" : `error (exit code ${exitCode})`;
    tried.push({ id, result, output });
    if (exitCode === 0) return { status: "pass", plan: parseBuildPlan(plan, `${id} build plan`) };
    return exitCode === 100 ? { status: "fail" } : { status: "error", exitCode };
  };
  const group = await resolveOrder(order, (id) => Promise.resolve().then(() => outcome(id)));
  if (!group) throw detectFailed(tried);
  const groupBps = group.buildpacks.map((g) => buildpacks.get(g.id)!);
  for (const bp of groupBps) input.onLog(`${bp.descriptor.id} ${bp.descriptor.version}`);
  for (const line of unusedBuildVariableWarnings(
    input.env,
    groupBps.map((bp) => bp.descriptor),
  ))
    input.onLog(line);
  return group;
}

async function restorePhase(build: PreparedBuild, group: ResolvedGroup): Promise<void> {
  const { input } = build;
  input.onPhase?.("restore");
  input.onLog("===> RESTORING");
  if (input.noCache) input.onLog("Skipping the cache (no-cache build)");
  else
    for (const g of group.buildpacks)
      await restoreCache(input, build.layout.layers, buildpackOf(build, g.id));
}

interface Built {
  readonly layersByBp: Map<string, Map<string, LayerToml>>;
  readonly launches: { buildpackId: string; launch: LaunchToml }[];
}

async function buildPhase(
  build: PreparedBuild,
  group: ResolvedGroup,
  step: ReturnType<typeof stepRunner>,
): Promise<Built> {
  const { input, layout } = build;
  const dirs = layout;
  const groupBps = group.buildpacks.map((g) => buildpackOf(build, g.id));
  input.onPhase?.("build");
  input.onLog("===> BUILDING");
  let buildEnvFromLayers: Record<string, string> = {};
  const launches: { buildpackId: string; launch: LaunchToml }[] = [];
  const layersByBp = new Map<string, Map<string, LayerToml>>();
  for (const [i, bp] of groupBps.entries()) {
    const plan: readonly PlanEntry[] = group.buildpacks[i]!.plan;
    const planRel = `${SCRATCH}/plan/${bp.escaped}.toml`;
    // An earlier buildpack of the group may have planted symlinks under /layers: write through none.
    await buildOutput(`a buildpack before ${bp.descriptor.id}`, () =>
      writeFileConfined(
        dirs.layers,
        planRel,
        stringify({ entries: plan.map((e) => ({ name: e.name, metadata: e.metadata })) }),
      ),
    );
    await mkdir(path.join(dirs.layers, bp.escaped), { recursive: true });
    await chownTree(path.join(dirs.layers, bp.escaped), input.stack, false);
    input.onLog(`-----> ${bp.descriptor.id} ${bp.descriptor.version}`);
    input.onBuildpack?.(bp.descriptor.id);
    const tail: string[] = [];
    const exitCode = await step.exec(
      "build",
      bp,
      [`${bp.dir}/bin/build`],
      {
        ...envFor(build, bp),
        ...buildEnvFromLayers,
        ...cnbVars(bp, layout),
        CNB_LAYERS_DIR: `${layout.seen.layers}/${bp.escaped}`,
        CNB_BP_PLAN_PATH: `${layout.seen.layers}/${planRel}`,
      },
      (line) => {
        input.onLog(line);
        tail.push(line);
        if (tail.length > LOG_TAIL) tail.shift();
      },
    );
    if (exitCode !== 0) {
      throw new PipelineError(
        "build_failed",
        `build failed in phase build: buildpack ${bp.descriptor.id} exited with code ${exitCode}${failureLine(tail)}`,
        { details: { phase: "build", buildpack: bp.descriptor.id, exit_code: exitCode, log_tail: tail } },
      );
    }
    const layers = await buildOutput(`buildpack ${bp.descriptor.id}`, () =>
      readLayers(dirs.layers, bp.escaped, bp.descriptor.id),
    );
    layersByBp.set(bp.descriptor.id, layers);
    // Later buildpacks see this one's build layers; the base env comes first so layer paths prepend to it.
    const current = { ...envFor(build, bp), ...buildEnvFromLayers };
    let next = current;
    for (const [name, layer] of layers) {
      if (!layer.types.build) continue;
      const rel = `${bp.escaped}/${name}`;
      const imagePath = `${layout.seen.layers}/${rel}`;
      next = await buildOutput(`buildpack ${bp.descriptor.id}`, async () =>
        applyEnvOps(next, [
          ...layerPathOps(imagePath, await subdirs(dirs.layers, rel), "build"),
          ...envOpsFromFiles(await envFiles(dirs.layers, `${rel}/env`)),
          ...envOpsFromFiles(await envFiles(dirs.layers, `${rel}/env.build`)),
        ]),
      );
    }
    buildEnvFromLayers = changedVars(envFor(build, bp), next);
    const launchText = await buildOutput(`buildpack ${bp.descriptor.id}`, () =>
      readFileConfined(dirs.layers, `${bp.escaped}/launch.toml`).catch(absent(undefined)),
    );
    if (launchText !== undefined) {
      launches.push({
        buildpackId: bp.descriptor.id,
        launch: parseLaunchToml(launchText, `${bp.descriptor.id} launch.toml`),
      });
    }
  }
  return { layersByBp, launches };
}

async function saveCachePhase(
  build: PreparedBuild,
  group: ResolvedGroup,
  layersByBp: Map<string, Map<string, LayerToml>>,
): Promise<void> {
  for (const g of group.buildpacks)
    await saveCache(
      build.input,
      build.layout.layers,
      buildpackOf(build, g.id),
      layersByBp.get(g.id) ?? new Map<string, LayerToml>(),
    );
}

/** The launch layers, the processes and the `/cnb` launcher scripts: what the exporter needs. */
async function finishBuild(
  build: PreparedBuild,
  group: ResolvedGroup,
  built: Built,
): Promise<LifecycleResult> {
  const { input, layout } = build;
  const dirs = layout;
  const groupBps = group.buildpacks.map((g) => buildpackOf(build, g.id));
  const launchLayers: LaunchLayer[] = [];
  const envLayers: LaunchEnvLayer[] = [];
  for (const bp of groupBps) {
    for (const [name, layer] of built.layersByBp.get(bp.descriptor.id) ?? []) {
      const rel = `${bp.escaped}/${name}`;
      const hostDir = path.join(dirs.layers, rel);
      if (!layer.types.launch || !(await isDir(hostDir))) continue;
      const imagePath = `${layout.seen.layers}/${rel}`;
      launchLayers.push({ buildpackId: bp.descriptor.id, name, hostDir, imagePath });
      envLayers.push(
        await buildOutput(`buildpack ${bp.descriptor.id}`, () => launchEnvLayer(dirs.layers, rel, imagePath)),
      );
    }
  }
  const processes = mergeProcesses(built.launches);
  const scripts = renderCnbScripts({
    layers: envLayers,
    processes,
    appDir: APP_DIR,
    layersDir: layout.seen.layers,
  });
  await rm(dirs.cnb, { recursive: true, force: true });
  for (const [rel, content] of scripts.files) {
    const file = path.join(dirs.cnb, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
    await chmod(file, 0o755);
  }
  for (const p of processes)
    input.onLog(
      `Process type ${p.type}${p.default ? " (default)" : ""}: ${[...p.command, ...p.args].join(" ")}`,
    );

  const groupEntries: GroupEntry[] = groupBps.map((b) => ({
    id: b.descriptor.id,
    version: b.descriptor.version,
    api: b.descriptor.api,
    homepage: b.descriptor.homepage,
  }));
  return {
    group: groupEntries,
    processes,
    layers: launchLayers,
    appDir: input.appDir,
    cnbDir: dirs.cnb,
    labels: built.launches.flatMap((l) => l.launch.labels),
    stack: input.stack,
  };
}

/**
 * The stack whose Python the app asks for (python-version.ts), or the default one. A request no stack
 * satisfies fails detect with the versions that exist; another stack is built on its first use.
 */
async function selectStack(input: LifecycleInput): Promise<Stack> {
  if (!input.stacks) return input.stack;
  const requested = await requestedSuite(input.appDir, input.env, input.stacks.suites, input.onLog);
  if (!requested) return input.stack;
  const chosen = requested.suite;
  if (chosen.suite === (input.stack.suite ?? input.stacks.suites[0]?.suite)) return input.stack;
  input.onLog(
    `${requested.source} asks for Python ${chosen.python}: building on the Debian ${chosen.suite} stack`,
  );
  return input.stacks.get(chosen.suite, input.onLog);
}

/**
 * Reads the app's `project.toml`, if any (CNB project descriptor 0.2): writes its inline buildpacks
 * and adds them to `buildpacks`, prunes the app dir by include/exclude, and returns the build env and
 * the detect order it asks for. Any problem fails the build in detect with the file and field named.
 */
async function applyProject(
  input: LifecycleInput,
  buildpacks: Map<string, Buildpack>,
  layout: Layout,
): Promise<{ buildEnv: Record<string, string>; order?: OrderGroup[] | undefined; inline: string[] }> {
  const file = path.join(input.appDir, PROJECT_FILE);
  const info = await lstat(file).catch(() => undefined);
  if (!info || info.isDirectory()) return { buildEnv: {}, inline: [] };
  try {
    // Read on the host, outside the sandbox: a symlink could point at a host file and leak it in errors.
    if (!info.isFile())
      throw new InputError(`${PROJECT_FILE}: must be a regular file in the repository (not a symlink)`);
    const text = await readFile(file, "utf8");
    const project = parseProjectToml(text, PROJECT_FILE);
    // The default order, taken before inline buildpacks join: they run only where project.toml puts them.
    const base = input.order ?? [
      { group: [...buildpacks.values()].map((b) => ({ id: b.descriptor.id, optional: true })) },
    ];
    const inlineRoot = layout.inlineBuildpacks;
    await rm(inlineRoot, { recursive: true, force: true });
    const inline: string[] = [];
    for (const e of [...project.pre, ...(project.group ?? []), ...project.post]) {
      if (e.kind !== "inline") continue;
      if (buildpacks.has(e.id))
        throw new InputError(
          `${PROJECT_FILE}: [[io.buildpacks.group]] inline buildpack id ${e.id} is already a buildpack of this platform; choose another id`,
        );
      const hostDir = path.join(inlineRoot, escapeId(e.id));
      await writeInlineBuildpack(hostDir, e);
      inline.push(hostDir);
      const loaded = await loadBuildpacks([hostDir], layout);
      for (const [id, bp] of loaded) buildpacks.set(id, bp);
    }
    const available = new Map(
      [...buildpacks.values()].map((b) => [
        b.descriptor.id,
        { id: b.descriptor.id, version: b.descriptor.version },
      ]),
    );
    const order = projectOrder(project, available, base, PROJECT_FILE);
    const removed = await pruneAppDir(input.appDir, project);
    if (Object.keys(project.buildEnv).length > 0)
      input.onLog(`${PROJECT_FILE}: build environment ${Object.keys(project.buildEnv).join(", ")}`);
    if (project.include || project.exclude)
      input.onLog(
        `${PROJECT_FILE}: ${project.include ? "include" : "exclude"} removed ${removed.length} path(s) from the app`,
      );
    if (order) input.onLog(`${PROJECT_FILE}: buildpack group ${order[0]!.group.map((g) => g.id).join(", ")}`);
    return { buildEnv: { ...project.buildEnv }, order, inline };
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    input.onLog(`error: ${error.message}`);
    throw new PipelineError("detect_failed", error.message, {
      cause: error,
      details: { phase: "detect", buildpack: null, exit_code: null, log_tail: [`error: ${error.message}`] },
    });
  }
}

async function loadBuildpacks(
  hostDirs: readonly string[],
  layout: Pick<Layout, "buildpackDir">,
): Promise<Map<string, Buildpack>> {
  const out = new Map<string, Buildpack>();
  for (const hostDir of hostDirs) {
    const file = path.join(hostDir, "buildpack.toml");
    const descriptor = parseBuildpackToml(await readFile(file, "utf8"), file);
    const escaped = escapeId(descriptor.id);
    out.set(descriptor.id, {
      descriptor,
      hostDir,
      escaped,
      dir: layout.buildpackDir(hostDir, escaped, descriptor.version),
    });
  }
  return out;
}

/**
 * Removes what an earlier build left. In place the layers dir may be a mount point (a volume), which
 * cannot be removed itself: its contents are. First, as detect writes inline buildpacks into it.
 */
async function clearDirs(dirs: Layout): Promise<void> {
  // Emptied, not removed: a sandbox started ahead (expectedSandboxSpec) already has both mounted.
  for (const dir of [dirs.layers, dirs.platform])
    for (const entry of await readdir(dir).catch(absent([])))
      await rm(path.join(dir, entry), { recursive: true, force: true });
}

/** The container runs as the stack's non-root user, so everything it writes to must belong to that user. */
async function prepareDirs(input: LifecycleInput, dirs: Layout): Promise<void> {
  await mkdir(path.join(dirs.platform, "env"), { recursive: true });
  await mkdir(dirs.layers, { recursive: true });
  await mkdir(input.cacheDir, { recursive: true });
  for (const [name, value] of Object.entries(input.env)) {
    if (ENV_NAME.test(name)) await writeFile(path.join(dirs.platform, "env", name), value);
  }
  await chownTree(input.appDir, input.stack);
  await chownTree(dirs.layers, input.stack);
  await chownTree(dirs.platform, input.stack);
}

/** Recursive lchown in-process (symlinks themselves, never their targets, which may point outside). */
async function chownTree(dir: string, stack: Stack, recursive = true): Promise<void> {
  await lchown(dir, stack.uid, stack.gid);
  if (!recursive) return;
  // Siblings in parallel: a Node.js layer has thousands of files and each call is one syscall.
  await Promise.all(
    (await readdir(dir, { withFileTypes: true })).map((entry) => {
      const p = path.join(dir, entry.name);
      return entry.isDirectory() ? chownTree(p, stack) : lchown(p, stack.uid, stack.gid);
    }),
  );
}

function baseEnvironment(input: LifecycleInput): Record<string, string> {
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/home/cnb",
    LANG: "C.UTF-8",
    CNB_EXEC_ENV: "production",
    CNB_TARGET_OS: "linux",
    CNB_TARGET_ARCH: process.arch === "arm64" ? "arm64" : "amd64",
    CNB_TARGET_DISTRO_NAME: "debian",
    CNB_TARGET_DISTRO_VERSION: "12",
    // This machine's HTTPS goes through an intercepting proxy: every tool must trust the stack's bundle.
    SSL_CERT_FILE: CA_FILE,
    NODE_EXTRA_CA_CERTS: CA_FILE,
    PIP_CERT: CA_FILE,
    REQUESTS_CA_BUNDLE: CA_FILE,
    SOURCE_DATE_EPOCH: String(input.sourceDateEpoch),
    ...(input.npmRegistry ? { npm_config_registry: input.npmRegistry } : {}),
    ...(input.debianMirror ? { SLIPWAY_DEBIAN_MIRROR: input.debianMirror } : {}),
  };
}

function cnbVars(bp: Buildpack, layout: Layout): Record<string, string> {
  return { CNB_BUILDPACK_DIR: bp.dir, CNB_PLATFORM_DIR: layout.seen.platform };
}

/** Runs one step in the sandbox; turns an abort into a PipelineError naming where it happened. */
function stepRunner(sandbox: Sandbox, input: LifecycleInput, layout: Layout) {
  return {
    async exec(
      phase: string,
      bp: Buildpack | undefined,
      command: string[],
      env: Record<string, string>,
      onLine: (line: string) => void,
    ): Promise<number> {
      try {
        const r = await sandbox.exec(command, {
          env,
          workdir: layout.seen.app,
          onOutput: (line) => onLine(line),
          signal: input.signal,
        });
        if (r.exceeded) {
          // The phase and buildpack are in the details: the build's reason names them (BuildPipeline).
          throw new PipelineError("build_failed", `build ${describeLimit(r.exceeded)}`, {
            details: {
              phase,
              buildpack: bp?.descriptor.id ?? null,
              exit_code: r.exitCode,
              limit: r.exceeded,
            },
          });
        }
        if (input.signal?.aborted) throw input.signal.reason;
        return r.exitCode;
      } catch (error) {
        if (!input.signal?.aborted || error instanceof PipelineError) throw error;
        const timedOut = input.signal.reason instanceof Error && input.signal.reason.name === "TimeoutError";
        const where = bp ? ` (buildpack ${bp.descriptor.id})` : "";
        throw new PipelineError(
          timedOut ? "build_failed" : "cancelled",
          `build ${timedOut ? "timed out" : "was cancelled"} in phase ${phase}${where}`,
          {
            cause: error,
            details: { phase, buildpack: bp?.descriptor.id ?? null, exit_code: null, log_tail: [] },
          },
        );
      }
    },
  };
}

/**
 * Runs the detect of every buildpack the order names in one `podman exec`, all at once (a process
 * start in the container costs a few hundred milliseconds, which seven buildpacks paid one after the
 * other). A generated script starts each `bin/detect` with its own environment (on top of the
 * container's, as a separate exec had) and keeps its output and exit code in the buildpack's scratch
 * directory. Detect reads the app and writes only its own build plan, so running them together, and
 * running those of groups the order never reaches, changes no outcome.
 */
async function detectAll(
  step: ReturnType<typeof stepRunner>,
  layout: Layout,
  bps: readonly Buildpack[],
  envOf: (bp: Buildpack) => Record<string, string>,
  stack: Stack,
): Promise<Map<string, { exitCode: number; output: string[]; plan: string }>> {
  const layersDir = layout.layers;
  const scratch = path.join(layersDir, SCRATCH, "detect");
  const inImage = `${layout.seen.layers}/${SCRATCH}/detect`;
  const lines = ["#!/bin/bash"];
  for (const bp of bps) {
    const dir = `${inImage}/${bp.escaped}`;
    await mkdir(path.join(scratch, bp.escaped), { recursive: true });
    const env = { ...envOf(bp), CNB_BUILD_PLAN_PATH: `${dir}/plan.toml` };
    const assignments = Object.entries(env).map(([k, v]) => shellQuote(`${k}=${v}`));
    lines.push(
      `( env ${assignments.join(" ")} ${shellQuote(`${bp.dir}/bin/detect`)} >${dir}/output 2>&1 </dev/null; ` +
        `echo $? >${dir}/status ) &`,
    );
  }
  lines.push("wait");
  await writeFile(path.join(scratch, "run"), lines.join("\n") + "\n");
  await chownTree(scratch, stack);
  const spill: string[] = [];
  await step.exec("detect", undefined, ["bash", `${inImage}/run`], {}, (line) => spill.push(line));
  const out = new Map<string, { exitCode: number; output: string[]; plan: string }>();
  for (const bp of bps) {
    const dir = `${SCRATCH}/detect/${bp.escaped}`;
    const read = (file: string) => readFileConfined(layersDir, `${dir}/${file}`).catch(() => "");
    const status = (await read("status")).trim();
    const output = (await read("output")).split("\n").filter((l, i, all) => i < all.length - 1 || l !== "");
    out.set(bp.descriptor.id, {
      // No status: the detect never finished (the script itself was killed); say so as an error.
      exitCode: /^\d+$/.test(status) ? Number(status) : 1,
      output: status === "" ? [...output, ...spill] : output,
      plan: await read("plan.toml"),
    });
  }
  return out;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The log line that says why a buildpack failed (see failure-cause.ts), for the one-line reason. */
function failureLine(tail: readonly string[]): string {
  const line = failureCause(tail);
  return line ? `: ${line}` : "";
}

function detectFailed(tried: readonly { id: string; result: string; output: string[] }[]): SlipwayError {
  const lines = tried.map((t) => {
    const said = t.output
      .filter((l) => l.trim() !== "")
      .join(" ")
      .trim();
    return `  ${t.id}: ${t.result}${said ? ` — ${said}` : ""}`;
  });
  const log = tried.flatMap((t) => t.output.map((l) => `[${t.id}] ${l}`));
  return new PipelineError(
    "detect_failed",
    `no buildpack group passed detection; nothing in this repository was recognised. Tried:\n${lines.join("\n")}`,
    {
      details: {
        phase: "detect",
        buildpack: null,
        exit_code: 20,
        tried: tried.map((t) => ({ id: t.id, result: t.result, output: t.output })),
        log_tail: log.slice(-LOG_TAIL),
      },
    },
  );
}

/** The `<layer>.toml` files of the buildpack directory `rel` under `root` (the build's layers or cache). */
async function readLayers(root: string, rel: string, id: string): Promise<Map<string, LayerToml>> {
  const out = new Map<string, LayerToml>();
  const entries = await readdirConfined(root, rel).catch(absent([]));
  for (const name of layerNames(entries.map((e) => e.name))) {
    const text = await readFileConfined(root, `${rel}/${name}.toml`);
    out.set(name, parseLayerToml(text, `${id} layer ${name}.toml`));
  }
  return out;
}

/**
 * Runs a read of what a buildpack wrote (or a write beside it); a refused file (a symlink, say) fails
 * the build naming who left it, as a buildpack exiting non-zero does.
 */
async function buildOutput<T>(who: string, access: () => Promise<T>): Promise<T> {
  try {
    return await access();
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    const message = `build failed in phase build: ${who}: ${error.message}`;
    throw new PipelineError("build_failed", message, {
      cause: error,
      details: { phase: "build", buildpack: null, exit_code: null, log_tail: [message] },
    });
  }
}

/** A `.catch` for a file or directory that may not exist: `fallback` then, any other error rethrown. */
function absent<T>(fallback: T): (error: unknown) => T {
  return (error) => {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return fallback;
    throw error;
  };
}

async function restoreCache(input: LifecycleInput, layersDir: string, bp: Buildpack): Promise<void> {
  const from = path.join(input.cacheDir, bp.escaped);
  const to = path.join(layersDir, bp.escaped);
  const cached = await readLayers(input.cacheDir, bp.escaped, bp.descriptor.id).catch(
    () => new Map<string, LayerToml>(),
  );
  if (cached.size === 0 && !(await isFile(path.join(from, "store.toml")))) return;
  await mkdir(to, { recursive: true });
  await lchown(to, input.stack.uid, input.stack.gid);
  // The linked files keep their owner, the build user who wrote them; what linkTree creates (directories,
  // symlinks, copies across file systems) is given to that user as it goes, so no second walk is needed.
  for (const [name, layer] of cached) {
    if (!layer.types.cache) continue;
    if (await isDir(path.join(from, name)))
      await copyTree(path.join(from, name), path.join(to, name), input.stack);
    await writeFile(path.join(to, `${name}.toml`), restoredLayerToml(layer));
    await lchown(path.join(to, `${name}.toml`), input.stack.uid, input.stack.gid);
    input.onLog(`Restoring cached layer ${bp.descriptor.id}:${name}`);
  }
  if (await isFile(path.join(from, "store.toml")))
    await copyTree(path.join(from, "store.toml"), path.join(to, "store.toml"), input.stack);
}

/** Replaces the buildpack's cache with this build's cache layers, atomically (copy aside, then rename). */
async function saveCache(
  input: LifecycleInput,
  layersDir: string,
  bp: Buildpack,
  layers: Map<string, LayerToml>,
): Promise<void> {
  const from = path.join(layersDir, bp.escaped);
  const final = path.join(input.cacheDir, bp.escaped);
  const tmp = path.join(input.cacheDir, `.${bp.escaped}.tmp`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  // slipway-lifecycle's layers and cache are two volumes: nothing links across them, and saving a layer
  // the build left as it was restored would copy it back byte by byte. Such a layer is linked from the
  // cache's own copy instead (same volume), found unchanged by a walk of both trees.
  let separate: boolean | undefined;
  for (const [name, layer] of layers) {
    if (!layer.types.cache) continue;
    separate ??= await separateVolumes(path.join(from, `${name}.toml`), tmp);
    // Nothing reads a layer that is not a launch layer after this (build layers served the later
    // buildpacks, which have run), and the build directory goes afterwards: such layers (npm, its
    // download cache: thousands of files) move into the cache instead of being linked file by file.
    const move = !layer.types.launch;
    const built = path.join(from, name);
    const cached = path.join(final, name);
    if (await isDir(built)) {
      if (separate && (await sameTree(built, cached))) {
        await copyTree(cached, path.join(tmp, name));
        input.onLog(`Keeping cached layer ${bp.descriptor.id}:${name} (unchanged)`);
      } else if (move) await moveTree(built, path.join(tmp, name));
      else await copyTree(built, path.join(tmp, name));
    }
    await copyTree(path.join(from, `${name}.toml`), path.join(tmp, `${name}.toml`));
  }
  if (await isFile(path.join(from, "store.toml")))
    await copyTree(path.join(from, "store.toml"), path.join(tmp, "store.toml"));
  await rm(final, { recursive: true, force: true });
  await rename(tmp, final);
}

/** Whether `file` cannot be hard-linked into directory `dir` (two mounts): one probe link. */
async function separateVolumes(file: string, dir: string): Promise<boolean> {
  const probe = path.join(dir, ".link-probe");
  try {
    linkSync(file, probe);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EXDEV") return true;
    // No such file (a layer without its toml): the save below reports what is wrong.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
  await rm(probe, { force: true });
  return false;
}

/**
 * Whether two trees hold the same entries: names, types, modes and link targets, and for each file the
 * same size and mtime to the second (what a cross-volume copy keeps), or, for a small file rewritten
 * since, the same bytes (buildpacks write their env files again on every build). The layer cache's
 * assumption: a buildpack replaces a file rather than editing it in place within the same second.
 */
async function sameTree(a: string, b: string): Promise<boolean> {
  try {
    return await walkSame(a, b);
  } catch {
    // Unreadable, or gone meanwhile: not known to be the same, so the layer is copied (which reports
    // a real problem).
    return false;
  }
}

async function walkSame(a: string, b: string): Promise<boolean> {
  const pending = [""];
  for (let done = 1; pending.length > 0; done++) {
    const rel = pending.pop()!;
    const [x, y] = [lstatSync(path.join(a, rel)), lstatSync(path.join(b, rel))];
    if (x.mode !== y.mode) return false;
    if (x.isSymbolicLink()) {
      if (readlinkSync(path.join(a, rel)) !== readlinkSync(path.join(b, rel))) return false;
    } else if (x.isFile()) {
      if (x.size !== y.size) return false;
      const sameSecond = Math.floor(x.mtimeMs / 1000) === Math.floor(y.mtimeMs / 1000);
      if (
        !sameSecond &&
        (x.size > 64 * 1024 || !readFileSync(path.join(a, rel)).equals(readFileSync(path.join(b, rel))))
      )
        return false;
    } else if (x.isDirectory()) {
      const names = readdirSync(path.join(a, rel));
      if (names.length !== readdirSync(path.join(b, rel)).length) return false;
      for (const name of names) pending.push(path.join(rel, name));
    }
    if (done % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return true;
}

/** A rename, or a copy where the two are different mounts (slipway-lifecycle: the layers and cache volumes). */
async function moveTree(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
    await copyTree(from, to);
  }
}

/**
 * Copies a layer between the cache and a build as hard links: instant, and no extra disk, where a real
 * copy of a Node.js layer takes seconds. Safe because buildpacks replace layer contents (rm -rf, then
 * write) rather than editing files in place, and the cache is only replaced after a successful build.
 * Falls back to copying when the two directories are on different file systems.
 */
async function copyTree(from: string, to: string, owner?: Stack): Promise<void> {
  try {
    await linkTree(from, to, owner);
  } catch (error) {
    throw new SlipwayError("internal", `copying the build cache failed: ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/**
 * `owner`, when given, gets what this creates; hard-linked files are the same inodes and keep theirs.
 * One synchronous walk that yields to the event loop every 256 entries: a promise per entry (through
 * libuv's four threads) took about three times as long on a Node.js build's cache (2,500 files in npm's
 * layer alone), and restore and save-cache are on the path of every build.
 */
async function linkTree(from: string, to: string, owner?: Stack): Promise<void> {
  const pending: [string, string][] = [[from, to]];
  for (let done = 1; pending.length > 0; done++) {
    const [source, target] = pending.pop()!;
    const info = lstatSync(source);
    const own = () => (owner ? lchownSync(target, owner.uid, owner.gid) : undefined);
    if (info.isSymbolicLink()) {
      symlinkSync(readlinkSync(source), target);
      own();
    } else if (info.isDirectory()) {
      mkdirSync(target, { mode: info.mode & 0o7777 });
      own();
      for (const entry of readdirSync(source))
        pending.push([path.join(source, entry), path.join(target, entry)]);
    } else if (info.isFile()) {
      try {
        linkSync(source, target);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
        copyFileSync(source, target);
        chmodSync(target, info.mode & 0o7777);
        // The copy keeps the file's mtime, in whole seconds (what Node can set exactly, so copying a
        // copy gives the same): the export's layer cache knows a big file by size and mtime, and a
        // restored dependency layer is then found unchanged instead of being compressed again.
        const seconds = Math.floor(info.mtimeMs / 1000);
        utimesSync(target, seconds, seconds);
        own();
      }
    }
    if (done % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The env of the launch layer `rel` under the layers directory `root`. */
async function launchEnvLayer(root: string, rel: string, imagePath: string): Promise<LaunchEnvLayer> {
  const envProcess = new Map<string, EnvFile[]>();
  const launchRel = `${rel}/env.launch`;
  for (const entry of await readdirConfined(root, launchRel).catch(absent([]))) {
    if (entry.isDirectory()) envProcess.set(entry.name, await envFiles(root, `${launchRel}/${entry.name}`));
  }
  return {
    imagePath,
    dirs: await subdirs(root, rel),
    env: await envFiles(root, `${rel}/env`),
    envLaunch: await envFiles(root, launchRel),
    envProcess,
  };
}

/** The env files of directory `rel` under `root`; a symlink among them is refused, not followed. */
async function envFiles(root: string, rel: string): Promise<EnvFile[]> {
  const out: EnvFile[] = [];
  for (const entry of await readdirConfined(root, rel).catch(absent([]))) {
    if (entry.isDirectory()) continue;
    out.push({ file: entry.name, content: await readFileConfined(root, `${rel}/${entry.name}`) });
  }
  return out;
}

async function subdirs(root: string, rel: string): Promise<Set<string>> {
  const entries = await readdirConfined(root, rel).catch(absent([]));
  return new Set(entries.filter((e) => e.isDirectory()).map((e) => e.name));
}

/** Only the variables the layers changed are carried forward; the rest comes from each buildpack's own base env. */
function changedVars(base: Record<string, string>, next: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(next).filter(([k, v]) => base[k] !== v));
}

/** lstat, not stat: a symlink a buildpack left in its layers is never taken for what it points at. */
async function isDir(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined))?.isDirectory() ?? false;
}

async function isFile(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined))?.isFile() ?? false;
}
