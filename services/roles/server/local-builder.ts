import path from "node:path";
import { exportImage, type ExportRegistry } from "../../adapters/oci/export.js";
import { runImageLayer } from "../../adapters/oci/run-layer.js";
import { containerOwner } from "../../adapters/podman/confinement.js";
import { ToolNetworks } from "../../adapters/podman/network.js";
import { PodmanBuildSandbox, sandboxName } from "../../adapters/podman/sandbox.js";
import { DEFAULT_SUITE, SUITES, ensureStack, type StackStep } from "../../adapters/stack/index.js";
import { loadBuildpackOrder, type BuildpackOrder } from "../../domain/lifecycle/buildpack-order.js";
import { expectedSandboxSpec, runLifecycle, type SandboxInput } from "../../domain/lifecycle/lifecycle.js";
import { pipEnvironment } from "../../domain/lifecycle/pip-env.js";
import { TimedSandbox } from "../../domain/pipeline/sandbox-timings.js";
import { WarmSandbox } from "../../domain/pipeline/warm-sandbox.js";
import type { StackCatalogue } from "../../domain/lifecycle/types.js";
import type { ImageExporter, LifecycleRunner } from "../../ports/build-steps.js";
import type { PrepareRequest } from "../../ports/build-backend.js";
import type { Config } from "../../platform/env.js";
import { SlipwayError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";

/** Where the run image's base layer is pushed once, then mounted into each tool's repository. */
const BASE_REPOSITORY = "slipway/run";

/** Slipway's own buildpacks and their detect order (`buildpacks/order.toml`), checked against the folders. */
export function buildpackOrder(config: Pick<Config, "repoRoot">): Promise<BuildpackOrder> {
  return loadBuildpackOrder(path.join(config.repoRoot, "buildpacks"));
}

/**
 * The local profile's builder: the stack images (built from Debian packages on first use, then cached),
 * the CNB lifecycle in podman, and the exporter pushing to the local registry. Preparing the stack can
 * take minutes on a new machine, so the server calls this after it is already answering.
 */
export async function localBuilder(
  config: Config,
  logger: Logger,
  registry: ExportRegistry,
  /** Called with each repository before pushing to it (Harbor: creates the project if missing). */
  beforePush: (repository: string) => Promise<void> = () => Promise.resolve(),
  /** This process's BuilderRegistry id, labelled on its sandboxes. */
  builder?: string,
  /** Told each step while the stack images are built (first start on a machine only). */
  onStackStep?: (step: StackStep) => void,
  /** Read at start (buildpackOrder), so a disagreement stops the start; read here when not given. */
  buildpacks?: BuildpackOrder,
): Promise<{ lifecycle: LifecycleRunner; exporter: ImageExporter }> {
  const stackConfig = { ...config, home: config.stackHome };
  const stack = await ensureStack(
    stackConfig,
    logger.child({ component: "stack" }),
    DEFAULT_SUITE,
    onStackStep,
  );
  // Stacks of other Debian releases (other Pythons) are made when a build first asks for one.
  const stacks: StackCatalogue = {
    suites: SUITES,
    get: async (suite, onLog) => {
      const known = SUITES.find((s) => s.suite === suite);
      if (!known) throw new SlipwayError("stack_unavailable", `Slipway makes no stack from Debian ${suite}`);
      onLog(`Preparing the Debian ${suite} stack (the first build that uses it waits a few minutes)`);
      const other = await ensureStack(stackConfig, logger.child({ component: "stack" }), known.suite);
      await runImageLayer(other);
      return other;
    },
  };
  // The run image's base layer is written once per stack; doing it now spares the first build 9 s.
  await runImageLayer(stack);
  const sandboxOwnership = {
    repoRoot: config.repoRoot,
    owner: containerOwner(config.home, "build"),
    builder,
  };
  const networks = new ToolNetworks({ repoRoot: config.repoRoot, owner: containerOwner(config.home, "net") });
  const buildpacksDir = path.join(config.repoRoot, "buildpacks");
  const { buildpacks: order, order: groups } = buildpacks ?? (await buildpackOrder(config));

  /** What of a build's lifecycle input its sandbox depends on: known before its source is there. */
  const sandboxInput = (build: PrepareRequest): SandboxInput => ({
    appDir: build.appDir,
    workDir: build.workDir,
    buildpacks: order,
    name: sandboxName(build.buildId),
    buildId: build.buildId,
    stack,
    limits: { memoryMb: config.build.memoryMb, cpus: config.build.cpus },
    libDir: path.join(buildpacksDir, "lib"),
  });
  // On the tool's network, like its webservice and jobs: a build cannot reach other tools' containers.
  const podmanSandbox = (tool: string) => PodmanBuildSandbox.create(sandboxOwnership, { networks, tool });
  /** Sandboxes started while their build's source is fetched (prepare), until the build takes them. */
  const warm = new Map<string, WarmSandbox>();

  return {
    lifecycle: {
      prepare: (input) => {
        const sandbox = new WarmSandbox(podmanSandbox(input.tool));
        sandbox.prestart(expectedSandboxSpec(sandboxInput(input)));
        warm.set(input.buildId, sandbox);
        return {
          release: async () => {
            if (warm.get(input.buildId) === sandbox) warm.delete(input.buildId);
            await sandbox.discard();
          },
        };
      },
      run: async (input) => {
        const sandbox = new TimedSandbox(warm.get(input.buildId) ?? podmanSandbox(input.tool), (error) =>
          logger.warn({ err: error, buildId: input.buildId }, "build sandbox could not be removed"),
        );
        warm.delete(input.buildId);
        const result = await runLifecycle({
          ...sandboxInput(input),
          sandbox,
          stacks,
          order: groups,
          cacheDir: path.join(config.home, "cache", input.tool, input.component),
          noCache: input.noCache,
          env: pipEnvironment(config.pipIndexUrl),
          sourceDateEpoch: input.sourceDateEpoch,
          npmRegistry: config.npmRegistry,
          debianMirror: config.debianMirror,
          signal: input.signal,
          onLog: input.onLog,
          onPhase: input.onPhase,
        });
        input.onLog(`Sandbox timings: ${sandbox.summary()}`);
        return result;
      },
    },
    exporter: {
      export: async (input) => {
        await beforePush(input.repository);
        await beforePush(BASE_REPOSITORY);
        return exportImage(registry, {
          result: input.result,
          // The run image of the stack the app was built on (another Python's, if it asked for one).
          stack: input.result.stack ?? stack,
          sourceDateEpoch: input.sourceDateEpoch,
          repository: input.repository,
          tag: input.tag,
          source: { commit: input.commit, repository: input.sourceUrl.replace(/\/\/[^@/]*@/, "//") },
          workDir: path.join(input.workDir, "export"),
          layerCacheDir: path.join(config.home, "layer-cache", input.repository),
          // Not a repository name (those never start with a dot), so no component's cache can be it.
          sharedLayerDir: path.join(config.home, "layer-cache", ".by-diff-id"),
          baseRepository: BASE_REPOSITORY,
          logger,
        });
      },
    },
  };
}
