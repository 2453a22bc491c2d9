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
  readonly cpus: number;
  readonly env: Readonly<Record<string, string>>;
}

export interface ExecResult {
  readonly exitCode: number;
}

/** A running, isolated container that build steps are executed in, one after another. */
export interface Sandbox {
  exec(
    command: readonly string[],
    options: {
      readonly env: Readonly<Record<string, string>>;
      readonly workdir: string;
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
