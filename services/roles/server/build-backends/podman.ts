import { containerOwner } from "../../../adapters/podman/confinement.js";
import { PodmanBuildSandboxes } from "../../../adapters/podman/sandbox.js";
import { PodmanToolContainers } from "../../../adapters/podman/tool-traces.js";
import type { Config } from "../../../platform/env.js";
import { localBuilder } from "../local-builder.js";
import { lifecycleBackend } from "../../../domain/pipeline/local-backend.js";
import type { BuildBackendSetup } from "./backend.js";

/**
 * Builds in podman sandboxes on this machine (`SLIPWAY_BUILD_BACKEND=podman`, the default), in both
 * runtime profiles: the CNB lifecycle over the debootstrapped stack, exported to the registry
 * (local-builder.ts). Its sandboxes are found by this server's build owner label.
 */
export function podmanBuildBackend(config: Config): BuildBackendSetup {
  const ownership = { repoRoot: config.repoRoot, owner: containerOwner(config.home, "build") };
  return {
    sandboxes: new PodmanBuildSandboxes(ownership),
    toolTraces: () => [new PodmanToolContainers({ repoRoot: config.repoRoot, buildOwner: ownership.owner })],
    start: async (d) => {
      const steps = await localBuilder(
        config,
        d.logger,
        d.registry,
        d.beforePush,
        d.builder,
        d.onStackStep,
        d.buildpacks,
      );
      return lifecycleBackend(steps.lifecycle, steps.exporter);
    },
  };
}
