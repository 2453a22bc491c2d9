import type { LifecycleResult } from "../domain/lifecycle/types.js";
import type { PrepareRequest, PreparedBuild } from "./build-backend.js";

/** Runs the buildpacks over a checked-out app (the CNB lifecycle: detect, restore, build). */
export interface LifecycleRunner {
  run(input: {
    readonly buildId: string;
    readonly tool: string;
    readonly component: string;
    readonly appDir: string;
    readonly workDir: string;
    readonly sourceDateEpoch: number;
    readonly noCache: boolean;
    readonly signal: AbortSignal;
    readonly onLog: (line: string) => void;
    readonly onPhase?: ((phase: "detect" | "restore" | "build") => void) | undefined;
  }): Promise<LifecycleResult>;
  /** As BuildBackend.prepare: starts ahead what `run` of the same build is likely to need. */
  prepare?(input: PrepareRequest): PreparedBuild;
}

/** Turns a lifecycle result into an image in the registry (the CNB exporter). */
export interface ImageExporter {
  export(input: {
    readonly result: LifecycleResult;
    readonly repository: string;
    readonly tag: string;
    readonly sourceDateEpoch: number;
    readonly commit: string;
    readonly sourceUrl: string;
    readonly workDir: string;
    readonly onLog: (line: string) => void;
  }): Promise<{ image: string; digest: string; blobsUploaded: number }>;
}
