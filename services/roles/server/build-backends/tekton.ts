import { TektonBuildSandboxes } from "../../../adapters/tekton/sandboxes.js";
import type { Config } from "../../../platform/env.js";
import { tektonBuilder, tektonKubeConfig } from "../tekton-builder.js";
import type { BuildBackendSetup } from "./backend.js";

/**
 * Builds as Tekton PipelineRuns (`SLIPWAY_BUILD_BACKEND=tekton`, docs/tekton.md). A build's "sandbox" is
 * its PipelineRun (labelled with the build and the builder that created it): `build cancel` and the
 * recovery of a dead builder's builds cancel and delete it. A tool's builds leave nothing on this
 * machine for `tools delete`.
 */
export function tektonBuildBackend(config: Config): BuildBackendSetup {
  return {
    sandboxes: new TektonBuildSandboxes(() => tektonKubeConfig(config), config.tekton.namespace),
    toolTraces: () => [],
    start: (d) => tektonBuilder(config, d.logger, d.access, d.builder),
  };
}
