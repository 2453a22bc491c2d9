import type { Phase } from "../builds/build.js";

/**
 * How long each phase of one build took, in milliseconds, in the order the phases ran. The build log
 * ends with them (a maintainer sees where a slow build spends its time) and the builder's structured
 * log carries them as fields (an operator can aggregate them).
 */
export class PhaseClock {
  private readonly spent = new Map<Phase, number>();
  private current: Phase;
  private since: number;
  private readonly started: number;

  constructor(
    first: Phase,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.current = first;
    this.started = this.since = now();
  }

  /** Ends the running phase and starts `next`; entering the running phase again changes nothing. */
  enter(next: Phase): void {
    if (next === this.current) return;
    this.stop();
    this.current = next;
  }

  /** Milliseconds per phase so far, the running one included, plus `total`. */
  timings(): Record<string, number> {
    this.stop();
    const out: Record<string, number> = {};
    for (const [phase, ms] of this.spent) out[phase] = Math.round(ms);
    out.total = Math.round(this.now() - this.started);
    return out;
  }

  /** `fetch 0.2 s, detect 0.4 s, …, total 3.1 s`: the build log's last line. */
  summary(): string {
    return Object.entries(this.timings())
      .map(([phase, ms]) => `${phase} ${(ms / 1000).toFixed(1)} s`)
      .join(", ");
  }

  private stop(): void {
    const t = this.now();
    this.spent.set(this.current, (this.spent.get(this.current) ?? 0) + (t - this.since));
    this.since = t;
  }
}
