import { spawn, type ChildProcess } from "node:child_process";
import { open } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { TransientError } from "./errors.js";
import type { Logger } from "./logger.js";
import { isListening } from "./net.js";
import { removePidFile, stopOrphan, writePidFile, type ChildIdentity } from "./pid-file.js";

/** What {@link SupervisedProcess.start} runs and how it knows the child serves. */
export interface SupervisedSpec extends ChildIdentity {
  readonly args: readonly string[];
  /** `<dir>/<name>.pid`: written at every start, removed at close. */
  readonly pidFile: string;
  /** The loopback port the child listens on: checked free before each start. */
  readonly port: number;
  /** The child's stdout and stderr are appended here; ignored when absent. */
  readonly logPath?: string;
  /** Resolves once the child serves; rejects after its own timeout. */
  readonly ready: () => Promise<void>;
  /** Where the child's own log is, for error messages. */
  readonly logHint: string;
  /** Delay before the first restart; doubled per failed restart up to `maxBackoffMs`. */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
}

/** A child that ran this long before dying starts its next restart at the first delay again. */
const STABLE_MS = 60_000;

/**
 * A child process Slipway owns (Redis, the registry), kept running: started once (an orphan of an
 * earlier, killed server on this home is stopped first), restarted with backoff whenever it dies, every
 * death and restart logged, and stopped by `close()`. The server keeps serving meanwhile; its clients
 * reconnect to the same port.
 */
export class SupervisedProcess {
  private child: ChildProcess | undefined;
  private startedAt = 0;
  private failures = 0;
  private restarts = 0;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly spec: SupervisedSpec,
    private readonly logger: Logger,
  ) {}

  /** Stops this home's orphan, then starts the child; rejects if its first start fails. */
  static async start(spec: SupervisedSpec, logger: Logger): Promise<SupervisedProcess> {
    const supervised = new SupervisedProcess(spec, logger.child({ child: spec.name }));
    await stopOrphan(spec.pidFile, spec, supervised.logger);
    await supervised.launch();
    return supervised;
  }

  /** The running child's pid; undefined between a death and its restart. */
  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** How many times the child was restarted after dying. */
  get restartCount(): number {
    return this.restarts;
  }

  async close(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    }
    await removePidFile(this.spec.pidFile);
  }

  private async launch(): Promise<void> {
    const { spec } = this;
    if (!(await portFreed(spec.port, 5_000))) {
      throw new TransientError(
        `cannot start ${spec.name}: port ${spec.port} on 127.0.0.1 is taken by a process that is not ` +
          `this home's ${spec.name}; stop it, or choose another port`,
      );
    }
    if (this.stopping) throw new TransientError(`${spec.name} is being stopped`);
    const log = spec.logPath ? await open(spec.logPath, "a", 0o600) : undefined;
    let child: ChildProcess;
    try {
      child = spawn(spec.command, spec.args, {
        stdio: ["ignore", log?.fd ?? "ignore", log?.fd ?? "ignore"],
        // Its own process group: a Ctrl-C in the terminal reaches the server, which stops its children
        // in order, instead of killing them under it (and the supervisor restarting them).
        detached: true,
      });
    } finally {
      // The child holds its own copy of the descriptor.
      await log?.close();
    }
    this.child = child;
    this.startedAt = Date.now();
    let serving = false;
    const died = new Promise<never>((_, reject) => {
      child.once("error", (e) => {
        if (!serving) reject(new TransientError(`cannot start ${spec.name}: ${e.message}`, { cause: e }));
      });
      child.once("exit", (code, signal) => {
        if (!serving)
          reject(new TransientError(`${spec.name} exited with ${code ?? signal}; see ${spec.logHint}`));
        else this.died(child, code, signal);
      });
    });
    died.catch(() => undefined);
    try {
      if (child.pid !== undefined) await writePidFile(spec.pidFile, child.pid);
      await Promise.race([spec.ready(), died]);
      // A port check can be answered by something else in the instant before the child fails to bind.
      if (child.exitCode !== null || child.signalCode !== null) await died;
      serving = true;
    } catch (e) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      throw e;
    }
  }

  private died(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || child !== this.child) return;
    if (Date.now() - this.startedAt > STABLE_MS) this.failures = 0;
    this.logger.error(
      { pid: child.pid, code, signal, restartInMs: this.backoff() },
      "child process died; restarting it",
    );
    this.schedule();
  }

  private backoff(): number {
    const first = this.spec.backoffMs ?? 500;
    return Math.min(this.spec.maxBackoffMs ?? 30_000, first * 2 ** this.failures);
  }

  private schedule(): void {
    const delay = this.backoff();
    this.failures += 1;
    this.timer = setTimeout(() => void this.restart(), delay);
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    try {
      await this.launch();
      this.restarts += 1;
      this.logger.warn({ pid: this.child?.pid, restarts: this.restarts }, "child process restarted");
    } catch (e) {
      if (this.stopping) return;
      this.logger.error(
        { err: e, restartInMs: this.backoff() },
        "child process restart failed; trying again",
      );
      this.schedule();
    }
  }
}

/**
 * Whether the loopback port is free, or frees within the timeout: a process that just died (a stopped
 * orphan, a crashed child) can show as a zombie while its other threads still hold the socket.
 */
async function portFreed(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isListening(port)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}
