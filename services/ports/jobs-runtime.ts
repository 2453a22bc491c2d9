import type { LimitExceeded } from "./limits.js";

/** One process of a job, as the runner asks the runtime for it. */
export interface JobProcessSpec {
  readonly tool: string;
  readonly job: string;
  readonly runId: string;
  /** `<registry>/<repo>@sha256:…` */
  readonly image: string;
  /** The release that image belongs to (a cluster labels the run's objects with it and its commit). */
  readonly releaseId?: string | undefined;
  /** A Procfile process type (`worker`) or a shell command line (`./manage.py cleanup --all`). */
  readonly command: string;
  readonly env: Readonly<Record<string, string>>;
  readonly memoryMb: number;
  /** CPU limit in CPUs; none: unlimited. */
  readonly cpus?: number | undefined;
}

export interface JobExit {
  /** The process's exit code; 137 when it was killed (timeout, stop, a limit). */
  readonly exitCode: number;
  /** It was stopped at its container's memory or process limit. */
  readonly exceeded?: LimitExceeded | undefined;
  /**
   * Why some of its output could not be read (`could not read the pod's log: …`): the run's log lacks
   * it, and the run says so instead of looking complete.
   */
  readonly outputIncomplete?: string | undefined;
}

/**
 * A started process: its output arrives through `onLines` until `exited` resolves. `exited` rejects
 * when the process never got to run (on a cluster: a pod stuck in ImagePullBackOff); the runner then
 * records a failed run with the reason in its log.
 */
export interface JobProcess {
  readonly id: string;
  readonly exited: Promise<JobExit>;
  /** Kills the process; `exited` then resolves. */
  kill(): Promise<void>;
}

/**
 * Runs job processes to completion (podman locally). The container is removed once it has ended and
 * its output was read, so the log store, not the runtime, keeps what the process printed.
 */
export interface JobsRuntime {
  start(spec: JobProcessSpec, onLines: (lines: string[]) => void): Promise<JobProcess>;
  /** Removes every job process this runtime left behind (after a crash or restart of the runner). */
  removeLeftovers(): Promise<number>;
}

/** Environment variables a tool's processes get (`envvars`); a no-op until env vars are configured. */
export type EnvFor = (tool: string) => Promise<Readonly<Record<string, string>>>;
