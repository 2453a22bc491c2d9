import type { Logger } from "../../platform/logger.js";
import type { ProcessLogs } from "../../ports/process-logs.js";
import type { ExitedProcess, ExitedProcesses } from "../../ports/runtime.js";

export interface WebKeeperOptions {
  /** Between two looks for exited web processes. */
  readonly intervalMs: number;
  /** The wait before the second restart in a row; it doubles with each further crash, up to maxDelayMs. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** A process that ran this long before it exited starts a new series: restarted at once again. */
  readonly stableMs: number;
  /**
   * How long after an exit it is first acted on: the output follower keeps the process's last lines
   * (a batch every 500 ms), so the note saying it exited comes after them in the log. Podman gives the
   * exit time in whole seconds, hence one second more.
   */
  readonly settleMs: number;
}

/** As Kubernetes backs off a crash-looping pod: 10 s, 20 s, 40 s … 5 minutes; reset after a minute up. */
export const DEFAULT_WEB_KEEPER: WebKeeperOptions = {
  intervalMs: 2_000,
  baseDelayMs: 10_000,
  maxDelayMs: 300_000,
  stableMs: 60_000,
  settleMs: 1_500,
};

/** A tool's web processes that crashed in a row, and when they are restarted next. */
interface Series {
  readonly releaseId: string;
  /** Crashes in a row, each within `stableMs` of the start before it. */
  crashes: number;
  /** When the next restart is due; undefined once all replicas are up again. */
  due: number | undefined;
  /** When the last crash (or failed restart) was seen. */
  at: number;
}

/**
 * Brings a crashed web process back on the local profile, as a platform is expected to (Heroku restarts
 * a crashed dyno, Kubernetes a crashed pod): every couple of seconds it looks for web containers of this
 * server that exited by themselves (a rollout, `webservice stop` or `tools delete` remove theirs, so
 * those are never seen), says why in the webservice's log, and has the deployer start the live release's
 * missing replicas again (`restore`: a new container, a fresh writable layer, the route updated). A
 * tool whose web process keeps crashing is restarted at once the first time, then after 10 s, 20 s, …
 * up to 5 minutes, so a crash loop costs little; a minute up ends the series.
 */
export class WebKeeper {
  private readonly series = new Map<string, Series>();
  /** Exited containers already told about (each is seen on every look until it is replaced). */
  private readonly told = new Set<string>();
  private readonly options: WebKeeperOptions;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly deps: {
      readonly runtime: ExitedProcesses;
      /** Starts the tool's live release's missing replicas; resolves to how many are still down. */
      readonly restore: (tool: string) => Promise<number>;
      readonly logs: Pick<ProcessLogs, "append">;
      readonly logger: Logger;
      readonly options?: Partial<WebKeeperOptions> | undefined;
      readonly now?: (() => number) | undefined;
    },
  ) {
    this.options = { ...DEFAULT_WEB_KEEPER, ...deps.options };
  }

  start(): void {
    if (this.timer || this.closed) return;
    const loop = () => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        if (!this.closed) this.timer = setTimeout(loop, this.options.intervalMs).unref();
      });
    };
    this.timer = setTimeout(loop, 0).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One look: new exits are told and scheduled; the tools whose restart is due are restored. */
  async tick(): Promise<void> {
    let exited: ExitedProcess[];
    try {
      exited = (await this.deps.runtime.exited()).filter((p) => p.process === "web");
    } catch (err) {
      this.deps.logger.warn({ err }, "exited web processes could not be listed");
      return;
    }
    const now = this.now();
    for (const p of exited) {
      if (this.told.has(p.id) || now - p.exitedAt < this.options.settleMs) continue;
      this.told.add(p.id);
      const s = this.series.get(p.tool);
      if (s?.due !== undefined && s.releaseId === p.releaseId) {
        // Another replica of a restart already scheduled: told, restarted with the others.
        await this.tell(p.tool, p.releaseId, `${exitLine(p)}; restarting it with the others`);
        continue;
      }
      const crashes = s && s.releaseId === p.releaseId && p.ranMs < this.options.stableMs ? s.crashes + 1 : 1;
      const delay = this.delay(crashes);
      this.series.set(p.tool, { releaseId: p.releaseId, crashes, due: now + delay, at: now });
      this.deps.logger.info(
        {
          tool: p.tool,
          releaseId: p.releaseId,
          replica: p.replica,
          exitCode: p.exitCode,
          crashes,
          delayMs: delay,
        },
        "web process exited",
      );
      await this.tell(p.tool, p.releaseId, `${exitLine(p)}; ${this.when(crashes, delay)}`);
    }
    // Forgotten once replaced (each exited container is seen on every look until then).
    const present = new Set(exited.map((p) => p.id));
    for (const id of this.told) if (!present.has(id)) this.told.delete(id);

    for (const [tool, s] of this.series) {
      if (this.closed) return;
      if (s.due === undefined || s.due > now) continue;
      const down = await this.deps.restore(tool).catch((err) => {
        this.deps.logger.warn({ err, tool }, "crashed webservice could not be restarted");
        return 1;
      });
      if (down === 0) {
        s.due = undefined;
        continue;
      }
      // It did not come back (it exited again before it answered): the restart counts as a crash.
      s.crashes += 1;
      s.at = this.now();
      const delay = this.delay(s.crashes);
      s.due = s.at + delay;
      const what = down === 1 ? "a web replica" : `${down} web replicas`;
      await this.tell(
        tool,
        s.releaseId,
        `slipway: ${what} did not come back; ${this.when(s.crashes, delay)}`,
      );
    }
    this.forgetOld(now);
  }

  private delay(crashes: number): number {
    if (crashes <= 1) return 0;
    return Math.min(this.options.baseDelayMs * 2 ** (crashes - 2), this.options.maxDelayMs);
  }

  private when(crashes: number, delayMs: number): string {
    if (delayMs === 0) return "restarting it now";
    const stable = Math.round(this.options.stableMs / 1000);
    return `restarting in ${Math.round(delayMs / 1000)} s (${crashes} crashes in a row, each within ${stable} s of its start)`;
  }

  private async tell(tool: string, releaseId: string, line: string): Promise<void> {
    await this.deps.logs.append(tool, releaseId, [line]).catch((err) => {
      this.deps.logger.warn({ err, tool }, "crash note could not be kept");
    });
  }

  /** Series long settled: the replicas are up again (or gone); nothing left to count. */
  private forgetOld(now: number): void {
    const horizon = this.options.maxDelayMs + this.options.stableMs;
    for (const [tool, s] of this.series)
      if (s.due === undefined && now - s.at > horizon) this.series.delete(tool);
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }
}

function exitLine(p: ExitedProcess): string {
  const how =
    p.exitCode === 137
      ? "was killed (exit code 137: most often it ran out of its memory limit)"
      : `exited with code ${p.exitCode}`;
  return `slipway: web replica ${p.replica} ${how} after ${seconds(p.ranMs)}`;
}

function seconds(ms: number): string {
  return ms < 60_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}
