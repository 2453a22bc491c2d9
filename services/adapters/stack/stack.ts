import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Stack, StackSuite } from "../../domain/lifecycle/types.js";
import type { Config } from "../../platform/env.js";
import { SlipwayError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import { run } from "../../platform/process.js";
import { podman, podmanEnv } from "../podman/podman.js";
import { StackProgress, describeStep, type StackImage, type StackStep } from "./progress.js";
import { CNB_USER, buildRootfs, treeSize } from "./rootfs.js";

/** Bump when the way images are made changes, so every machine rebuilds them. */
export const STACK_VERSION = "1";

/**
 * The Debian releases Slipway builds stacks from, and the one Python each has (Debian packages one
 * python3 per release, and no other source of Python is reachable here). The first is the default;
 * the others are built on first use, when an app asks for their Python.
 */
export const SUITES = [
  { suite: "bookworm", python: "3.11" },
  { suite: "trixie", python: "3.13" },
] as const satisfies readonly StackSuite[];

export type Suite = (typeof SUITES)[number]["suite"];
export const DEFAULT_SUITE: Suite = SUITES[0].suite;

/**
 * Build image: what the nodejs and python buildpacks need (python3 also runs their JSON/TOML/semver
 * helpers), plus make and g++ so npm packages with native addons (node-gyp) build.
 */
export const BUILD_PACKAGES = [
  "ca-certificates",
  "curl",
  "xz-utils",
  "git",
  "python3",
  "python3-venv",
  "python3-pip",
  // `python` runs python3, as on Toolforge's images (`web: python server.py`).
  "python-is-python3",
  "make",
  "g++",
] as const;

/** Run image: no compilers. python3 sits at the same path as in the build image, so venvs made there work. */
/**
 * The run image's packages beyond minbase. libatomic1: Node.js 24 and later (what `engines.node: ">=20"`
 * resolves to) link it, and without it `node` fails to start in the image although the build, whose
 * image has it through g++, worked.
 */
export const RUN_PACKAGES = ["ca-certificates", "python3", "python-is-python3", "libatomic1"] as const;

export type StackConfig = Pick<Config, "home" | "debianMirror" | "caBundle" | "repoRoot">;

/** The content hash naming a stack: same inputs, same images. */
export async function stackId(
  config: Pick<Config, "caBundle">,
  suite: Suite = DEFAULT_SUITE,
): Promise<string> {
  const h = createHash("sha256");
  h.update(JSON.stringify({ v: STACK_VERSION, suite, build: BUILD_PACKAGES, run: RUN_PACKAGES }));
  if (config.caBundle) h.update(await readFile(config.caBundle));
  return h.digest("hex").slice(0, 16);
}

const inProcess = new Map<string, Promise<Stack>>();

/**
 * Returns the stack, building it first if this machine has none for the current inputs. The build
 * image lives in podman (`localhost/slipway/build:<id>`); the run image is a directory,
 * `<home>/stack/run-<id>/rootfs`, that the exporter layers app images on. Concurrent callers, in this
 * process or others, wait for one build instead of starting their own.
 */
export async function ensureStack(
  config: StackConfig,
  logger: Logger,
  suite: Suite = DEFAULT_SUITE,
  /** Told each step of a build of the stack (only when this process builds it). */
  onProgress: (step: StackStep) => void = () => undefined,
): Promise<Stack> {
  const id = await stackId(config, suite);
  const pending = inProcess.get(id);
  if (pending) return pending;
  const promise = ensure(config, logger.child({ stack: id, suite }), id, suite, onProgress).finally(() =>
    inProcess.delete(id),
  );
  inProcess.set(id, promise);
  return promise;
}

async function ensure(
  config: StackConfig,
  logger: Logger,
  id: string,
  suite: Suite,
  onProgress: (step: StackStep) => void,
): Promise<Stack> {
  const stackDir = path.join(config.home, "stack");
  const stack: Stack = {
    id,
    suite,
    python: SUITES.find((s) => s.suite === suite)?.python ?? "",
    buildImage: `localhost/slipway/build:${id}`,
    runRootfs: path.join(stackDir, `run-${id}`, "rootfs"),
    uid: CNB_USER.uid,
    gid: CNB_USER.gid,
  };
  if (await isComplete(config, stack)) return stack;
  await mkdir(stackDir, { recursive: true });
  const release = await acquireLock(path.join(stackDir, `.lock-${id}`), logger);
  try {
    // Another process may have finished the stack while we waited for the lock.
    if (await isComplete(config, stack)) return stack;
    logger.info({ mirror: config.debianMirror }, "building the stack images (first run on this machine)");
    const started = Date.now();
    const tracker = (image: StackImage) =>
      new StackProgress(image, (step) => {
        logger.info({ ...step, detail: describeStep(suite, step) }, "stack progress");
        onProgress(step);
      });
    await Promise.all([
      buildBuildImage(config, logger, stack, stackDir, tracker("build")),
      buildRunRootfs(config, logger, stack, tracker("run")),
    ]);
    logger.info({ seconds: (Date.now() - started) / 1000 }, "stack ready");
    return stack;
  } catch (error) {
    throw new SlipwayError("stack_unavailable", `could not build the build stack: ${errorMessage(error)}`, {
      cause: error,
    });
  } finally {
    await release();
  }
}

async function isComplete(config: StackConfig, stack: Stack): Promise<boolean> {
  if (!existsSync(path.join(path.dirname(stack.runRootfs), "complete"))) return false;
  const r = await podman(["image", "exists", stack.buildImage], {
    repoRoot: config.repoRoot,
    allowFailure: true,
  });
  return r.code === 0;
}

async function buildBuildImage(
  config: StackConfig,
  logger: Logger,
  stack: Stack,
  stackDir: string,
  progress: StackProgress,
): Promise<void> {
  const dir = path.join(stackDir, `build-${stack.id}`, "rootfs");
  const started = Date.now();
  logger.info({ image: "build", packages: BUILD_PACKAGES }, "debootstrap started");
  await buildRootfs({
    dir,
    packages: BUILD_PACKAGES,
    mirror: config.debianMirror,
    suite: stack.suite ?? DEFAULT_SUITE,
    caBundle: config.caBundle,
    onLine: (line) => progress.line(line),
    onPrepare: () => progress.enter("preparing the image"),
  });
  const bytes = await treeSize(dir);
  logger.info({ image: "build", seconds: (Date.now() - started) / 1000, bytes }, "debootstrap finished");
  progress.enter("saving the image");
  const importStarted = Date.now();
  // Streamed through a pipe: the tree is hundreds of megabytes and should not sit in memory.
  await run(
    "bash",
    [
      "-c",
      'set -o pipefail; tar --numeric-owner -C "$1" -c . | podman import --change "USER=$3" --change "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" - "$2"',
      "import",
      dir,
      stack.buildImage,
      `${CNB_USER.uid}:${CNB_USER.gid}`,
    ],
    { env: podmanEnv(config.repoRoot) },
  );
  logger.info(
    { image: stack.buildImage, seconds: (Date.now() - importStarted) / 1000 },
    "build image imported",
  );
  await rm(path.dirname(dir), { recursive: true, force: true });
}

async function buildRunRootfs(
  config: StackConfig,
  logger: Logger,
  stack: Stack,
  progress: StackProgress,
): Promise<void> {
  const finalDir = path.dirname(stack.runRootfs);
  const tmpDir = `${finalDir}.tmp`;
  const started = Date.now();
  logger.info({ image: "run", packages: RUN_PACKAGES }, "debootstrap started");
  await buildRootfs({
    dir: path.join(tmpDir, "rootfs"),
    packages: RUN_PACKAGES,
    mirror: config.debianMirror,
    suite: stack.suite ?? DEFAULT_SUITE,
    caBundle: config.caBundle,
    onLine: (line) => progress.line(line),
    onPrepare: () => progress.enter("preparing the image"),
  });
  const bytes = await treeSize(path.join(tmpDir, "rootfs"));
  logger.info({ image: "run", seconds: (Date.now() - started) / 1000, bytes }, "debootstrap finished");
  progress.enter("saving the image");
  await rm(finalDir, { recursive: true, force: true });
  await rename(tmpDir, finalDir);
  await writeFile(path.join(finalDir, "complete"), `${new Date().toISOString()}\n`);
}

/**
 * A lock file holding the owner's pid. A lock whose owner is gone (crash, kill -9) is taken over, so a
 * dead build never blocks the machine.
 */
async function acquireLock(file: string, logger: Logger): Promise<() => Promise<void>> {
  let announced = false;
  for (;;) {
    try {
      const handle = await open(file, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number((await readFile(file, "utf8").catch(() => "")).trim());
    const age = Date.now() - ((await stat(file).catch(() => undefined))?.mtimeMs ?? Date.now());
    if ((owner > 0 && !alive(owner)) || (!owner && age > 10_000)) {
      logger.warn({ file, owner }, "removing a stale stack lock");
      await rm(file, { force: true });
      continue;
    }
    if (!announced) logger.info({ owner }, "waiting for another process building the stack");
    announced = true;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
