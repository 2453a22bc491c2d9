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
}

export interface RunningApp {
  readonly id: string;
  readonly tool: string;
  readonly process: string;
  readonly releaseId: string;
  /** Where the front proxy reaches it. */
  readonly address: { readonly host: string; readonly port: number };
}

/** Runs a tool's processes (podman locally, Kubernetes in a cluster). */
export interface AppRuntime {
  start(spec: RunSpec): Promise<RunningApp>;
  stop(id: string): Promise<void>;
  list(tool?: string): Promise<RunningApp[]>;
  /** Last lines of a process's output, for failure reports. */
  logs(id: string, tail: number): Promise<string[]>;
}
