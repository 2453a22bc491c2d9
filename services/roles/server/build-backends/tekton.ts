import type { Config } from "../../../platform/env.js";
import { tektonBuilder } from "../tekton-builder.js";
import type { BuildBackendSetup } from "./backend.js";

/**
 * Builds as Tekton PipelineRuns (`SLIPWAY_BUILD_BACKEND=tekton`, docs/tekton.md). Nothing runs on this
 * machine: no sandboxes to find or remove (a cancel reaches the PipelineRun through the pipeline's
 * signal), and a tool's builds leave nothing here for `tools delete`.
 */
export function tektonBuildBackend(config: Config): BuildBackendSetup {
  return {
    sandboxes: { list: () => Promise.resolve([]), remove: () => Promise.resolve() },
    toolTraces: () => [],
    start: (d) => tektonBuilder(config, d.logger, d.access),
  };
}
