export interface LogLine {
  /** Opaque cursor; pass the last one seen to read what follows it. */
  readonly id: string;
  readonly line: string;
}

/** Build logs, kept per build and bounded, readable while the build runs and after. */
export interface BuildLogs {
  append(buildId: string, line: string): Promise<void>;
  read(buildId: string, after?: string, limit?: number): Promise<LogLine[]>;
  /** Yields lines as they arrive until the build is finished (`isDone` returns true) or the signal aborts. */
  follow(buildId: string, isDone: () => Promise<boolean>, signal: AbortSignal): AsyncIterable<LogLine>;
}
