import type { LimitExceeded } from "./limits.js";

export interface RunSpec {
  readonly tool: string;
  readonly process: string;
  readonly releaseId: string;
  /** `<registry>/<repo>@sha256:…` */
  readonly image: string;
  readonly env: Readonly<Record<string, string>>;
  /** The port the process listens on inside its container (given to it as PORT). */
  readonly port: number;
  readonly memoryMb: number;
  /** CPU limit in CPUs (0.5 = half a core); none: unlimited. */
  readonly cpus?: number | undefined;
  /**
   * Which copy of the process this is (0, 1, …) when a release runs several; part of the container's
   * name and labels, so that each copy is addressed on its own.
   */
  readonly replica?: number | undefined;
  /**
   * What to run instead of the image's default process: a Procfile process type (`web`) or a command
   * line, run in the app's launch environment.
   */
  readonly command?: string | undefined;
}

/** How a one-shot process ended. */
export interface RunOnceResult {
  /** The exit code; undefined when it was killed at the timeout. */
  readonly code: number | undefined;
  readonly timedOut: boolean;
  /** Its last lines of output (stdout and stderr). */
  readonly tail: readonly string[];
  /** It was stopped at its container's memory or process limit. */
  readonly exceeded?: LimitExceeded | undefined;
}

export interface RunningApp {
  readonly id: string;
  readonly tool: string;
  readonly process: string;
  readonly releaseId: string;
  /** Its copy index (RunSpec.replica); undefined for processes started without one. */
  readonly replica?: number | undefined;
  /** Where the front proxy reaches it. */
  readonly address: { readonly host: string; readonly port: number };
}

/** One running container's CPU and memory use now. */
export interface ContainerUsage {
  readonly process: string;
  readonly replica: number;
  /** Percent of one core. */
  readonly cpuPercent: number;
  readonly memoryBytes: number;
  readonly memoryLimitBytes: number;
}

/** Runs a tool's processes (podman locally, Kubernetes in a cluster). */
export interface AppRuntime {
  start(spec: RunSpec): Promise<RunningApp>;
  stop(id: string): Promise<void>;
  list(tool?: string): Promise<RunningApp[]>;
  /** Last lines of a process's output, for failure reports. */
  logs(id: string, tail: number): Promise<string[]>;
  /**
   * Runs `command` (as in {@link RunSpec.command}) once in a new container of the spec's image, with its
   * env and limits and no published port, to completion or `timeoutS`; each output line goes to `onLine`.
   */
  runOnce(
    spec: Omit<RunSpec, "port" | "command">,
    command: string,
    timeoutS: number,
    onLine?: (line: string) => void,
  ): Promise<RunOnceResult>;
  /** Runs a command line inside a running process's container (a health-check script); true on exit 0. */
  exec(id: string, command: string, timeoutS: number): Promise<{ ok: boolean; output: string }>;
}

/** A container of a tool's long-running process that ended by itself (crashed, or exited), not removed. */
export interface ExitedProcess {
  readonly id: string;
  readonly tool: string;
  readonly process: string;
  readonly releaseId: string;
  readonly replica: number;
  readonly exitCode: number;
  /** How long it ran, in milliseconds (from its last start to its exit). */
  readonly ranMs: number;
  /** When it exited (milliseconds since the epoch): one exit, told apart from the next of the same replica. */
  readonly exitedAt: number;
}

/** The processes of this server's that ended by themselves (locally; Kubernetes restarts its own pods). */
export interface ExitedProcesses {
  exited(): Promise<ExitedProcess[]>;
}

/** What one of this server's running tool containers has written to its own filesystem. */
export interface WrittenLayer {
  readonly id: string;
  readonly tool: string;
  /** `web` for a webservice process, `job` for a job run. */
  readonly kind: "web" | "job";
  /** The process type (web) or the job's name. */
  readonly process: string;
  /** The release of a web process (its log is kept per release); undefined for jobs. */
  readonly releaseId: string | undefined;
  readonly replica: number;
  readonly bytes: number;
}

/** The containers' writable layers, measured, and a way to stop one (locally: podman on ext4, no quota). */
export interface WrittenLayers {
  measure(): Promise<WrittenLayer[]>;
  /** Stops the container, leaving it exited (a web process is then restarted on a fresh filesystem). */
  stop(id: string): Promise<void>;
}
