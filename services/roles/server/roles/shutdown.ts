import type { Logger } from "../../../platform/logger.js";
import type { Closers } from "../profiles/profile.js";

/**
 * What the server closes, in reverse order of starting: whatever started later may use what started
 * before it (workers use Redis). A closer that fails is logged and the rest still run.
 */
export class Shutdown implements Closers {
  private readonly closers: (() => Promise<void> | void)[] = [];
  private started = false;

  constructor(private readonly logger: Logger) {}

  get closing(): boolean {
    return this.started;
  }

  add(closer: () => Promise<void> | void): void {
    this.closers.push(closer);
  }

  async close(): Promise<void> {
    this.started = true;
    for (const c of this.closers.reverse())
      await Promise.resolve()
        .then(c)
        .catch((e: unknown) => this.logger.warn({ err: e }, "close failed"));
  }
}
