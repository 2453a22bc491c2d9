import path from "node:path";
import { pushRunImage } from "../../../adapters/oci/run-image.js";
import { containerOwner } from "../../../adapters/podman/confinement.js";
import { ToolNetworks } from "../../../adapters/podman/network.js";
import { PodmanBuildSandbox, PodmanBuildSandboxes } from "../../../adapters/podman/sandbox.js";
import { PodmanToolContainers } from "../../../adapters/podman/tool-traces.js";
import { DEFAULT_SUITE, SUITES, ensureStack } from "../../../adapters/stack/index.js";
import { prepareLifecycleDir } from "../../../adapters/stack/lifecycle-dir.js";
import { lifecycleOverlay, pipelinesBackend } from "../../../adapters/tekton-local/backend.js";
import { parseDefinitions } from "../../../adapters/tekton-local/definitions.js";
import { readPipelineFiles } from "../../../adapters/tekton/pipelines-dir.js";
import type { Config } from "../../../platform/env.js";
import { ConfigError } from "../../../platform/env.js";
import { SlipwayError } from "../../../platform/errors.js";
import type { BuildBackendSetup } from "./backend.js";

/** Tasks that reach this machine's loopback: Slipway's own git remote (fetch) and its registry (export). */
const HOST_NETWORK_TASKS = new Set(["fetch", "export"]);

/**
 * Builds by running `pipelines/` on this machine (`SLIPWAY_BUILD_BACKEND=pipelines`, docs/tekton.md):
 * the Tasks a cluster runs, each TaskRun a podman container (each step a `podman exec` in it),
 * slipway-lifecycle mounted at /cnb. Its TaskRun containers carry this server's build owner label, so
 * `build cancel`, recovery and `tools delete` find them as they find the podman backend's sandboxes. fetch and export run no tool code and use the host's
 * network (the git remote and the registry listen on loopback); build runs on the tool's own network.
 */
export function pipelinesBuildBackend(config: Config): BuildBackendSetup {
  const ownership = { repoRoot: config.repoRoot, owner: containerOwner(config.home, "build") };
  return {
    sandboxes: new PodmanBuildSandboxes(ownership),
    toolTraces: () => [new PodmanToolContainers({ repoRoot: config.repoRoot, buildOwner: ownership.owner })],
    start: async (d) => {
      if (!d.registryAccount)
        throw new ConfigError("SLIPWAY_BUILD_BACKEND=pipelines needs the registry's push account");
      const definitions = parseDefinitions(await readPipelineFiles(path.join(config.repoRoot, "pipelines")));
      const stackConfig = { ...config, home: config.stackHome };
      const stack = await ensureStack(
        stackConfig,
        d.logger.child({ component: "stack" }),
        DEFAULT_SUITE,
        d.onStackStep,
      );
      await d.beforePush("slipway/run");
      const runImage = await pushRunImage(d.registry, stack, "slipway/run");
      const lifecycleDir = await prepareLifecycleDir({
        repoRoot: config.repoRoot,
        cacheDir: path.join(config.stackHome, "lifecycle"),
      });
      const networks = new ToolNetworks({
        repoRoot: config.repoRoot,
        owner: containerOwner(config.home, "net"),
      });
      const sandboxOwnership = { ...ownership, builder: d.builder };
      // Each suite's images, made once: the default's now, another's when a build first asks for it.
      const otherImages = new Map<string, Promise<{ build: string; run: string }>>([
        [DEFAULT_SUITE, Promise.resolve({ build: stack.buildImage, run: runImage })],
      ]);
      const backend = pipelinesBackend({
        definitions,
        suites: SUITES,
        images: (suite, onLog) => {
          const known = SUITES.find((s) => s.suite === suite);
          if (!known)
            throw new SlipwayError("stack_unavailable", `Slipway makes no stack from Debian ${suite}`);
          let made = otherImages.get(known.suite);
          if (!made) {
            onLog(`Preparing the Debian ${suite} stack (the first build that uses it waits a few minutes)`);
            made = ensureStack(stackConfig, d.logger.child({ component: "stack" }), known.suite).then(
              async (other) => ({
                build: other.buildImage,
                run: await pushRunImage(d.registry, other, "slipway/run"),
              }),
            );
            // A failed attempt is not kept: the next build tries again.
            made.catch(() => otherImages.delete(known.suite));
            otherImages.set(known.suite, made);
          }
          return made;
        },
        registry: d.registryAccount,
        user: { uid: stack.uid, gid: stack.gid },
        memoryMb: config.build.memoryMb,
        cpus: config.build.cpus,
        timeoutS: config.build.timeoutS,
        cacheDir: (tool, component) => path.join(config.home, "cache", tool, component),
        // The podman backend's layer cache of the same component (the same format): switching backends
        // does not make the next build compress every layer again.
        layerCacheDir: (repository) => path.join(config.home, "layer-cache", repository),
        sandbox: (tool, task) =>
          Promise.resolve(
            PodmanBuildSandbox.create(
              sandboxOwnership,
              HOST_NETWORK_TASKS.has(task) ? "host" : { networks, tool },
            ),
          ),
        imageOverlay: lifecycleOverlay(lifecycleDir),
        mirrors: config,
        credential: async (request) => (await d.access.plan(request.sourceUrl, undefined, request.tool)).auth,
      });
      return {
        build: async (request, events) => {
          await d.beforePush(request.repository);
          return backend.build(request, events);
        },
      };
    },
  };
}
