import { randomBytes } from "node:crypto";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { podman, podmanEnv } from "../../services/adapters/podman/podman.js";
import { PodmanBuildSandbox } from "../../services/adapters/podman/sandbox.js";
import { ensureStack } from "../../services/adapters/stack/index.js";
import { runLifecycle } from "../../services/domain/lifecycle/lifecycle.js";
import type { LifecycleResult, Stack } from "../../services/domain/lifecycle/types.js";
import { loadConfig } from "../../services/platform/env.js";
import { PipelineError } from "../../services/platform/errors.js";
import { memoryLogger } from "../../services/platform/logger.js";
import { run } from "../../services/platform/process.js";
import { buildpackOrder } from "../../services/roles/server/local-builder.js";
import { serveBuilt } from "./serve-built.js";
import { TEST_STACK_HOME } from "./stack.js";

/**
 * Runs the real lifecycle (podman sandbox, the cached test stack, every buildpack of the repository in
 * the server's detect order, buildpacks/order.toml) over fixture apps, the way test/buildpacks-extra.test.ts does, for test
 * files that need builds without a server.
 */
export const config = loadConfig({ ...process.env, SLIPWAY_HOME: TEST_STACK_HOME });
export const FIXTURES = path.join(config.repoRoot, "test", "fixtures", "apps");
const { buildpacks } = await buildpackOrder(config);

export interface BuildOptions {
  noCache?: boolean;
  /** The build container's limits; 2048 MiB, 2 CPUs and the sandbox's pid limit by default. */
  limits?: { memoryMb: number; cpus: number; pids?: number };
  /** The build's timeout; 420 s by default. */
  timeoutMs?: number;
  /** Lines as they come, for tests that watch a build in progress. */
  onLog?: (line: string) => void;
}

export interface Builder {
  readonly stack: Stack;
  readonly root: string;
  fixture(name: string, extra?: Record<string, string>, as?: string): Promise<string>;
  build(
    name: string,
    appDir: string,
    options?: BuildOptions,
  ): Promise<{ result: LifecycleResult; lines: string[]; seconds: number }>;
  buildError(name: string, appDir: string, options?: BuildOptions): Promise<PipelineError>;
  serve(
    name: string,
    result: LifecycleResult,
    use: (get: (p: string, init?: RequestInit) => Promise<Response>) => Promise<void>,
  ): Promise<void>;
  close(): Promise<void>;
}

export async function startBuilder(prefix: string): Promise<Builder> {
  const stack = await ensureStack(config, memoryLogger());
  await mkdir("/var/tmp/slipway-test-work", { recursive: true });
  const root = await mkdtemp(`/var/tmp/slipway-test-work/${prefix}-`);
  const runImage = `localhost/slipway/run:${stack.id}`;
  const exists = await podman(["image", "exists", runImage], {
    repoRoot: config.repoRoot,
    allowFailure: true,
  });
  if (exists.code !== 0) {
    await run(
      "bash",
      ["-c", 'tar --numeric-owner -C "$1" -c . | podman import - "$2"', "import", stack.runRootfs, runImage],
      { env: podmanEnv(config.repoRoot) },
    );
  }

  const build: Builder["build"] = async (name, appDir, options = {}) => {
    const lines: string[] = [];
    const started = Date.now();
    const result = await runLifecycle({
      sandbox: PodmanBuildSandbox.create({ repoRoot: config.repoRoot, owner: "slipway-build-test" }),
      stack,
      buildpacks,
      appDir,
      workDir: path.join(root, name, "work"),
      cacheDir: path.join(root, name, "cache"),
      noCache: options.noCache ?? false,
      env: { SLIPWAY_DEBIAN_MIRROR: config.debianMirror },
      sourceDateEpoch: 1_700_000_000,
      limits: options.limits ?? { memoryMb: 2048, cpus: 2 },
      npmRegistry: config.npmRegistry,
      libDir: path.join(config.repoRoot, "buildpacks", "lib"),
      name: `slipway-test-${name}-${randomBytes(3).toString("hex")}`,
      signal: AbortSignal.timeout(options.timeoutMs ?? 420_000),
      onLog: (line) => {
        lines.push(line);
        options.onLog?.(line);
        // BPX_TRACE=1 prints each build line with its time since the build started.
        if (process.env.BPX_TRACE) console.log(`${name} +${Date.now() - started}ms ${line}`);
      },
    });
    return { result, lines, seconds: (Date.now() - started) / 1000 };
  };

  return {
    stack,
    root,
    async fixture(name, extra = {}, as = name) {
      const dir = path.join(root, as, "app");
      await rm(dir, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      if (name) await cp(path.join(FIXTURES, name), dir, { recursive: true });
      for (const [file, content] of Object.entries(extra)) {
        await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
        await writeFile(path.join(dir, file), content);
      }
      return dir;
    },
    build,
    async buildError(name, appDir, options) {
      try {
        await build(name, appDir, options);
      } catch (error) {
        if (error instanceof PipelineError) return error;
        throw error;
      }
      throw new Error("the build was expected to fail");
    },
    serve(name, result, use) {
      return serveBuilt(
        { repoRoot: config.repoRoot, runImage, uid: stack.uid, gid: stack.gid, name, result },
        use,
      );
    },
    async close() {
      await rm(root, { recursive: true, force: true });
    },
  };
}
