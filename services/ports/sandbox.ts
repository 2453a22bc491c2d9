import type { LimitExceeded } from "./limits.js";

export interface SandboxSpec {
  readonly name: string;
  readonly image: string;
  /** host path → container path */
  readonly mounts: readonly {
    readonly host: string;
    readonly container: string;
    readonly readOnly: boolean;
  }[];
  readonly user: string;
  readonly memoryMb: number;
  /** Processes (threads) the container may have at once; the adapter's default when absent. */
  readonly pids?: number | undefined;
  readonly cpus: number;
  readonly env: Readonly<Record<string, string>>;
  /** The build it belongs to, labelled on the container so a sandbox a killed builder left is found. */
  readonly buildId?: string | undefined;
  /** The image's filesystem read-only (a Tekton step's `readOnlyRootFilesystem`); mounts keep their own mode. */
  readonly readOnlyRootfs?: boolean | undefined;
}

export interface ExecResult {
  readonly exitCode: number;
  /**
   * The container hit its memory or process limit during (or before) this step; the sandbox was
   * stopped then, so the step ended at once instead of at the build's timeout.
   */
  readonly exceeded?: LimitExceeded | undefined;
}

/** A running, isolated container that build steps are executed in, one after another. */
export interface Sandbox {
  exec(
    command: readonly string[],
    options: {
      readonly env: Readonly<Record<string, string>>;
      readonly workdir: string;
      /**
       * `uid:gid` this command runs as, where it differs from the container's (a Task's steps that share
       * one container but not a `runAsUser`); the container's user when absent.
       */
      readonly user?: string | undefined;
      readonly onOutput: (line: string, stream: "stdout" | "stderr") => void;
      readonly signal?: AbortSignal | undefined;
    },
  ): Promise<ExecResult>;
  /** Stops and removes the container; safe to call twice. */
  close(): Promise<void>;
}

export interface BuildSandbox {
  start(spec: SandboxSpec): Promise<Sandbox>;
}

/** A sandbox container as found on the host: it outlives a builder that was killed. */
export interface SandboxFound {
  readonly buildId: string;
  /** The builder that started it; undefined for sandboxes started before builders were recorded. */
  readonly builder: string | undefined;
}

/** The sandbox containers of this server's builds, found by their labels. */
export interface BuildSandboxes {
  list(): Promise<SandboxFound[]>;
  /** Removes the build's sandbox (only the one `builder` started, when given); none is fine. */
  remove(buildId: string, builder?: string): Promise<void>;
}
