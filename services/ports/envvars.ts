/** One environment variable of a tool, as the tool's processes see it. */
export interface EnvVar {
  readonly name: string;
  readonly value: string;
}

/** Per-tool bounds a write must stay within; checked atomically with the write. */
export interface EnvVarLimits {
  readonly maxCount: number;
  /** Sum over the tool's variables of name + value bytes (UTF-8). */
  readonly maxTotalBytes: number;
}

export type EnvVarWrite = "created" | "updated" | "too_many" | "too_large";

/**
 * A tool's environment variables. Values cross this interface in plain text; the adapter keeps them
 * encrypted at rest. Kept apart from StateStore: secrets have their own store and their own key.
 */
export interface EnvVarStore {
  /** All of a tool's variables, sorted by name. */
  list(tool: string): Promise<EnvVar[]>;
  get(tool: string, name: string): Promise<string | undefined>;
  /** Creates or replaces one variable unless that would break `limits` (then nothing is written). */
  set(tool: string, name: string, value: string, limits: EnvVarLimits): Promise<EnvVarWrite>;
  /** False when the tool had no such variable. */
  delete(tool: string, name: string): Promise<boolean>;
}

/** What runs a tool's processes asks for their environment: the deployer, the release phase, jobs. */
export interface EnvSource {
  envFor(tool: string): Promise<Record<string, string>>;
}
