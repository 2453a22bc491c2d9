import type { LogLine } from "./logs.js";

/**
 * Output of a tool's long-running processes (the webservice), kept per release and bounded, readable
 * after the container is gone: a rollout, a restart or a stop removes the container, not its log.
 */
export interface ProcessLogs {
  /** Appends a batch of lines (one store write per batch, not per line). */
  append(tool: string, releaseId: string, lines: readonly string[]): Promise<void>;
  /** The last `tail` lines of a release's output, oldest first. */
  read(tool: string, releaseId: string, tail: number): Promise<LogLine[]>;
  /** Yields lines appended after `after` (a cursor from `read`, or "$" for only new ones) until the signal aborts. */
  follow(tool: string, releaseId: string, after: string, signal: AbortSignal): AsyncIterable<LogLine>;
  /** Releases with kept output, newest first. */
  releases(tool: string): Promise<string[]>;
  /** When the last batch of a release was appended (ISO), so a follower can resume after a restart. */
  lastAppendAt(tool: string, releaseId: string): Promise<string | undefined>;
}

/** A webservice stopped on purpose (`webservice stop`): it stays stopped over restarts until started. */
export interface WebserviceStopped {
  readonly release_id: string;
  readonly at: string;
  readonly actor: string;
}

export interface WebserviceMarks {
  getStopped(tool: string): Promise<WebserviceStopped | undefined>;
  setStopped(tool: string, mark: WebserviceStopped): Promise<void>;
  clearStopped(tool: string): Promise<void>;
}
