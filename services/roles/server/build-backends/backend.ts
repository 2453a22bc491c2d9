import type { ExportRegistry } from "../../../adapters/oci/export.js";
import type { StackStep } from "../../../adapters/stack/index.js";
import type { BuildpackOrder } from "../../../domain/lifecycle/buildpack-order.js";
import type { ToolTraces } from "../../../domain/tools/tool-deletion.js";
import type { Config } from "../../../platform/env.js";
import type { Logger } from "../../../platform/logger.js";
import type { BuildBackend } from "../../../ports/build-backend.js";
import type { BuildSandboxes } from "../../../ports/sandbox.js";
import type { SourceAccess } from "../source-access.js";

/**
 * Where builds run (`SLIPWAY_BUILD_BACKEND`), whatever the runtime profile: podman sandboxes on the
 * builder's machine, or Tekton PipelineRuns. Chosen once at start (build-backends/index.ts), so no role
 * asks which it is. `start` gives the builder role the pipeline's `BuildBackend` port.
 */
export interface BuildBackendSetup {
  /** A build's sandbox, found and removed: `build cancel` (API) and the recovery of a dead builder's builds. */
  readonly sandboxes: BuildSandboxes;
  /** What a tool's builds leave (their sandboxes), removed first by `tools delete`. */
  toolTraces(): readonly ToolTraces[];
  /**
   * What the builder role's pipeline hands a fetched commit to (detect, build, export). May take
   * minutes the first time (podman: the stack images); the server is already answering then.
   */
  start(deps: BuildStartDeps): Promise<BuildBackend>;
}

export interface BuildStartDeps {
  readonly logger: Logger;
  readonly registry: ExportRegistry;
  /** Called with each repository before pushing to it (Harbor: creates the project if missing). */
  readonly beforePush: (repository: string) => Promise<void>;
  /** This process's BuilderRegistry id, labelled on its sandboxes. */
  readonly builder: string;
  /** Told each step while the stack images are built (first start on a machine only). */
  readonly onStackStep: (step: StackStep) => void;
  /** Read at start, so a disagreement with the folders stops the start. */
  readonly buildpacks: BuildpackOrder | undefined;
  /** How a tool's source is reached (its deploy credential), for a backend that fetches by itself. */
  readonly access: SourceAccess;
  /** The registry's push account, for a backend whose export step pushes by itself (pipelines). */
  readonly registryAccount?: { readonly host: string; readonly username: string; readonly password: string };
}

/** Makes a backend from the settings; no I/O until `steps`. */
export type BuildBackendFactory = (config: Config) => BuildBackendSetup;
