/** What one of a tool's running containers uses now, as the runtime measures it. */
export interface ToolContainerUsage {
  readonly tool: string;
  /** `web` for a webservice process (and its other Procfile processes), `job` for a job run. */
  readonly kind: "web" | "job";
  /** Percent of one core. */
  readonly cpuPercent: number;
  readonly memoryBytes: number;
}

/** Reads what every tool's containers on this runtime use now (podman stats locally). */
export interface UsageSource {
  read(signal?: AbortSignal): Promise<readonly ToolContainerUsage[]>;
}

/** A tool's use at one moment: per process kind, the sum over its containers. */
export interface UsageSample {
  /** When it was taken (ISO). */
  readonly at: string;
  readonly kinds: Partial<
    Record<"web" | "job", { readonly cpuPercent: number; readonly memoryBytes: number }>
  >;
}

/** The last samples of each tool, bounded in number and forgotten a while after the last one. */
export interface UsageHistory {
  /** Appends a sample; only the newest `keep` stay, and all go `ttlS` seconds after the newest. */
  record(
    tool: string,
    sample: UsageSample,
    limits: { readonly keep: number; readonly ttlS: number },
  ): Promise<void>;
  /** The kept samples of a tool, oldest first. */
  recent(tool: string): Promise<UsageSample[]>;
}
