import { Writable } from "node:stream";
import type { Log } from "@kubernetes/client-node";
import type { Logger } from "../../platform/logger.js";

/** Longer lines are cut, as on the local profile: one line must not fill a run's log. */
const MAX_LINE = 8192;

/**
 * Log lines read with `timestamps=true` (`<RFC3339Nano> <text>`), handed on once each although the
 * reads overlap: a follow that reconnects, and the read after the container ended, ask for the log
 * `sinceTime` the last second seen (the API takes whole seconds), so lines of that second come again.
 */
export class LogCursor {
  private last = "";
  private atLast = 0;
  private skip = 0;

  /** Hands on nothing older than `iso` (e.g. when a release's output was last kept, after a restart). */
  static from(iso: string | undefined): LogCursor {
    const c = new LogCursor();
    const ts = iso ? sortable(iso) : undefined;
    if (ts) c.last = ts;
    return c;
  }

  /** Seconds precision, which every API server version accepts for `sinceTime`. */
  get sinceTime(): string | undefined {
    return this.last ? `${this.last.slice(0, 19)}Z` : undefined;
  }

  /** Call before each read. */
  newRead(): void {
    this.skip = this.atLast;
  }

  /** The lines of `raw` not handed on before, without their timestamps. */
  take(raw: readonly string[]): string[] {
    const out: string[] = [];
    for (const line of raw) {
      const space = line.indexOf(" ");
      const ts = sortable(space > 0 ? line.slice(0, space) : "");
      const text = space > 0 ? line.slice(space + 1) : line;
      if (!ts) {
        out.push(cut(line));
        continue;
      }
      if (ts < this.last) continue;
      if (ts === this.last && this.skip > 0) {
        this.skip--;
        continue;
      }
      if (ts === this.last) this.atLast++;
      else {
        this.last = ts;
        this.atLast = 1;
        this.skip = 0;
      }
      out.push(cut(text));
    }
    return out;
  }
}

/** RFC3339Nano drops trailing zeros of the fraction; padded to 9 digits, timestamps sort as strings. */
function sortable(ts: string): string | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(ts);
  return m ? `${m[1]}.${(m[2] ?? "").padEnd(9, "0")}Z` : undefined;
}

function cut(line: string): string {
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line;
}

export interface LogFollow {
  /** True once the stream has ended (the container ended, or the connection dropped): follow again. */
  readonly ended: boolean;
  stop(): void;
}

/**
 * Follows a container's log (`follow=true`, `timestamps=true`, from the cursor's `sinceTime`) and hands
 * each batch of new complete lines on as it arrives. A container that has not started yet answers 400;
 * the follow then just ends, and the caller tries again on its next look at the pod.
 */
export function followLog(
  log: Log,
  namespace: string,
  pod: string,
  container: string,
  cursor: LogCursor,
  onLines: (lines: string[]) => void,
  logger: Logger,
): LogFollow {
  const abort = new AbortController();
  const state = { ended: false, stop: () => abort.abort() };
  let pending = "";
  cursor.newRead();
  const sink = new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      if (abort.signal.aborted) return done();
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      const fresh = cursor.take(lines);
      if (fresh.length > 0) onLines(fresh);
      done();
    },
  });
  // A partial last line is left to the next read, which gets it whole.
  sink.on("finish", () => (state.ended = true));
  sink.on("error", () => (state.ended = true));
  log
    .log(namespace, pod, container, sink, {
      follow: true,
      timestamps: true,
      ...(cursor.sinceTime ? { sinceTime: cursor.sinceTime } : {}),
    })
    .then((controller) => {
      abort.signal.addEventListener("abort", () => controller.abort(), { once: true });
      if (abort.signal.aborted) controller.abort();
    })
    .catch((error: unknown) => {
      state.ended = true;
      logger.debug({ err: error, pod }, "could not follow the log yet");
    });
  return state;
}

/**
 * Runs `look` at once, then again `pollMs` after each look has ended (never two at a time), until
 * `stop()`. A look that fails goes to `onError`, and the next one comes as usual.
 */
export class LookLoop {
  private timer: NodeJS.Timeout | undefined;
  private looking: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly look: () => Promise<void>,
    private readonly pollMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    if (this.stopped) return;
    this.looking = this.look()
      .catch(this.onError)
      .finally(() => {
        if (!this.stopped) this.timer = setTimeout(() => this.start(), this.pollMs);
      });
  }

  /** Resolves once the look in progress, if any, has ended; no look starts after this. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.looking;
  }
}
