import type { ExportRegistry } from "../../../adapters/oci/export.js";
import type { StackStep } from "../../../adapters/stack/index.js";
import type { BuildpackOrder } from "../../../domain/lifecycle/buildpack-order.js";
import type { ToolTraces } from "../../../domain/tools/tool-deletion.js";
import type { Config } from "../../../platform/env.js";
import type { Logger } from "../../../platform/logger.js";
import type { ImageExporter, LifecycleRunner } from "../../../ports/build-steps.js";
import type { BuildSandboxes } from "../../../ports/sandbox.js";

/**
 * Where builds run (`SLIPWAY_BUILD_BACKEND`), whatever the runtime profile: podman sandboxes on the
 * builder's machine today. Chosen once at start (build-backends/index.ts), so no role asks which it is.
 */
export interface BuildBackend {
  /** A build's sandbox, found and removed: `build cancel` (API) and the recovery of a dead builder's builds. */
  readonly sandboxes: BuildSandboxes;
  /** What a tool's builds leave (their sandboxes), removed first by `tools delete`. */
  toolTraces(): readonly ToolTraces[];
  /**
   * The builder role's two steps: detect and build an app dir, then write its image to the registry.
   * May take minutes the first time (podman: the stack images); the server is already answering then.
   */
  steps(deps: BuildStepsDeps): Promise<{ lifecycle: LifecycleRunner; exporter: ImageExporter }>;
}

export interface BuildStepsDeps {
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
}

/** Makes a backend from the settings; no I/O until `steps`. */
export type BuildBackendFactory = (config: Config) => BuildBackend;
