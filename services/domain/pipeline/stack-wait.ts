import type { Logger } from "../../platform/logger.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { StateStore } from "../../ports/store.js";

/** Where one stack image's build stands (the stack adapter's progress, reduced to what a build log says). */
export interface StackImageStep {
  readonly image: string;
  readonly step: number;
  readonly total: number;
}

/** Builds looked at per tool: the newest are the queued ones. */
const RECENT_BUILDS = 20;

/**
 * While the stack images are built (the first start on a machine, minutes), pushes queue up with no
 * builder to take them. This writes into each waiting build's log what it waits for, once per step of
 * the slower image, so `slipway build logs -f` shows progress instead of nothing.
 */
export class StackWaitNotes {
  private readonly images = new Map<string, StackImageStep>();
  private announced = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: Pick<StateStore, "listTools" | "listBuilds">,
    private readonly logs: Pick<BuildLogs, "append">,
    private readonly logger: Logger,
    /** How many images the stack has; the overall step is the slowest image's. */
    private readonly imageCount = 2,
  ) {}

  /** Feeds one image's step; appends a line to waiting builds when the overall step moves on. */
  step(s: StackImageStep): void {
    this.images.set(s.image, s);
    if (this.images.size < this.imageCount) return;
    const step = Math.min(...[...this.images.values()].map((i) => i.step));
    if (step <= this.announced) return;
    this.announced = step;
    const line = `waiting for the stack images to be built (step ${step} of ${s.total}) — first start only`;
    // Chained so the lines of two steps cannot interleave; a failure costs a log line, not the build.
    this.chain = this.chain
      .then(() => this.announce(line))
      .catch((e: unknown) => this.logger.warn({ err: e }, "could not note the stack wait"));
  }

  /** Resolves when every line announced so far is written (for tests and orderly shutdown). */
  settled(): Promise<void> {
    return this.chain;
  }

  private async announce(line: string): Promise<void> {
    for (const tool of await this.store.listTools()) {
      for (const build of await this.store.listBuilds(tool.name, RECENT_BUILDS)) {
        if (build.status === "pending") await this.logs.append(build.id, line);
      }
    }
  }
}
