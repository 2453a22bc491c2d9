import type { ProcessType } from "../domain/lifecycle/types.js";

/** The phases a backend reports as it enters them (fetch and config are the pipeline's own). */
export type BuildPhase = "detect" | "restore" | "build" | "export";

/** One build as a backend sees it: what to build, and where its image goes. */
export interface BuildRequest {
  readonly buildId: string;
  readonly tool: string;
  readonly component: string;
  /** The exact commit, its ref and repository (a cluster backend fetches it itself). */
  readonly commit: string;
  readonly ref: string;
  readonly sourceUrl: string;
  /** The commit as the builder checked it out (a local backend builds it in place). */
  readonly appDir: string;
  /** A directory for this build only, removed afterwards. */
  readonly workDir: string;
  /** Commit time in seconds: reproducible output and image timestamps. */
  readonly sourceDateEpoch: number;
  readonly noCache: boolean;
  /** Registry repository and tag of the image (`tool-<tool>/<component>`, the commit). */
  readonly repository: string;
  readonly tag: string;
}

export interface BuildEvents {
  /** Each line of the build's output, in order. */
  readonly onLog: (line: string) => void;
  /** Called as the build enters each phase: phases are events, never read back from log text. */
  readonly onPhase: (phase: BuildPhase) => void;
  /** Aborting (timeout, cancel, supersede) stops the build; the backend then rejects. */
  readonly signal: AbortSignal;
}

export interface BuiltImage {
  readonly image: string;
  readonly digest: string;
  /** The image's process types and the buildpack that declared each. */
  readonly processes: readonly Pick<ProcessType, "type" | "buildpackId">[];
  /** Milliseconds per phase as the backend measured them, when it measures them itself (a cluster's steps). */
  readonly phaseTimings?: Readonly<Record<string, number>> | undefined;
  /** Blobs pushed to the registry, when the backend knows (a code-only change: one). */
  readonly blobsUploaded?: number | undefined;
}

/**
 * Where builds run: detect, restore, build and export of one checked-out commit, ending with an
 * image in the registry. The local backend runs the CNB lifecycle in podman on this machine; the
 * Tekton backend runs `pipelines/` as a PipelineRun on a cluster. Failures are PipelineErrors with
 * `details.phase` (and `buildpack`, `log_tail`, `limit` when known).
 */
export interface BuildBackend {
  build(request: BuildRequest, events: BuildEvents): Promise<BuiltImage>;
  /**
   * Told as the pipeline starts fetching the commit: a backend may start ahead what `build` is likely to
   * need (the local one: its sandbox container). `release()` is called once the build is over, whether
   * or not `build` ran.
   */
  prepare?(request: PrepareRequest): PreparedBuild;
}

/** What the pipeline knows of a build before its source is there. */
export type PrepareRequest = Pick<
  BuildRequest,
  "buildId" | "tool" | "component" | "appDir" | "workDir" | "noCache"
>;

/** What a backend started ahead for one build; `release()` lets go of what the build did not take. */
export interface PreparedBuild {
  release(): Promise<void>;
}
