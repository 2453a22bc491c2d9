import type { Logger } from "../../platform/logger.js";
import type { ToolContainerUsage, UsageHistory, UsageSample, UsageSource } from "../../ports/usage.js";

export interface UsageSamplerOptions {
  /** Between two samples; one minute, so {@link keep} samples cover the last hour. Shorter in tests. */
  readonly intervalMs: number;
  readonly keep: number;
}

export const DEFAULT_USAGE_SAMPLING: UsageSamplerOptions = { intervalMs: 60_000, keep: 60 };

/**
 * Records every minute what each tool's containers use (CPU and memory, summed per process kind), so
 * the dashboard can show the last hour. Samples live in {@link UsageHistory}, not in this process: a
 * tool with no running containers gets no sample, and its history expires an interval after the
 * last kept one would have aged out, so a deleted tool's goes on its own.
 */
export class UsageSampler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly options: UsageSamplerOptions;

  constructor(
    private readonly deps: {
      readonly source: UsageSource;
      readonly history: UsageHistory;
      readonly logger: Logger;
      readonly options?: Partial<UsageSamplerOptions> | undefined;
      readonly now?: (() => Date) | undefined;
    },
  ) {
    this.options = { ...DEFAULT_USAGE_SAMPLING, ...deps.options };
  }

  /** Samples now, then every interval until {@link close}. */
  start(): void {
    if (this.timer || this.abort.signal.aborted) return;
    const loop = () => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        if (!this.abort.signal.aborted) this.timer = setTimeout(loop, this.options.intervalMs).unref();
      });
    };
    this.timer = setTimeout(loop, 0).unref();
  }

  /** One sample of every tool with running containers; a failed read is logged and the next one tried. */
  async tick(): Promise<void> {
    let usage: readonly ToolContainerUsage[];
    try {
      usage = await this.deps.source.read(this.abort.signal);
    } catch (err) {
      if (!this.abort.signal.aborted) this.deps.logger.warn({ err }, "container usage could not be read");
      return;
    }
    const at = (this.deps.now?.() ?? new Date()).toISOString();
    const { keep, intervalMs } = this.options;
    const limits = { keep, ttlS: Math.ceil(((keep + 1) * intervalMs) / 1000) };
    for (const [tool, sample] of sumPerTool(usage, at)) {
      await this.deps.history
        .record(tool, sample, limits)
        .catch((err: unknown) => this.deps.logger.warn({ err, tool }, "usage sample could not be stored"));
    }
  }

  async close(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.timer);
    await this.running;
  }
}

/** Per tool, the sum of its containers' use per process kind. */
export function sumPerTool(usage: readonly ToolContainerUsage[], at: string): Map<string, UsageSample> {
  const out = new Map<
    string,
    { at: string; kinds: Record<string, { cpuPercent: number; memoryBytes: number }> }
  >();
  for (const u of usage) {
    const sample = out.get(u.tool) ?? { at, kinds: {} };
    const sum = sample.kinds[u.kind] ?? { cpuPercent: 0, memoryBytes: 0 };
    sample.kinds[u.kind] = {
      cpuPercent: sum.cpuPercent + u.cpuPercent,
      memoryBytes: sum.memoryBytes + u.memoryBytes,
    };
    out.set(u.tool, sample);
  }
  return out;
}
