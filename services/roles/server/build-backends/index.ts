import { registered } from "../registered.js";
import type { BuildBackendFactory } from "./backend.js";

export type { BuildBackendSetup, BuildBackendFactory, BuildStartDeps } from "./backend.js";

/**
 * Every build backend by its `SLIPWAY_BUILD_BACKEND` name. A new backend is one file beside these (its
 * adapters in a folder of their own under services/adapters/) and one line here; loaded only when chosen.
 */
const BUILD_BACKENDS = registered<BuildBackendFactory>("build backend", "SLIPWAY_BUILD_BACKEND", {
  podman: async () => (await import("./podman.js")).podmanBuildBackend,
  tekton: async () => (await import("./tekton.js")).tektonBuildBackend,
  pipelines: async () => (await import("./pipelines.js")).pipelinesBuildBackend,
});

/** The names `buildBackend` knows, for messages and docs. */
export const BUILD_BACKEND_NAMES = BUILD_BACKENDS.names;

/** The factory of the build backend `name`; an unknown name stops the start before anything runs. */
export function buildBackend(name: string): Promise<BuildBackendFactory> {
  return BUILD_BACKENDS.load(name);
}
