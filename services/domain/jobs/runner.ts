import { errorMessage } from "../../platform/errors.js";
import { newId } from "../../platform/ids.js";
import type { Logger } from "../../platform/logger.js";
import type { JobsStore, ScheduleEntry } from "../../ports/jobs-store.js";
import { describeLimit } from "../../ports/limits.js";
import { nextRun } from "./cron.js";
import type { JobDefinition, JobRun, RunStatus, RunTrigger } from "./job.js";
import type { EnvFor, JobProcess, JobsRuntime } from "../../ports/jobs-runtime.js";

export interface JobRunnerOptions {
  /** How often definitions, schedules and run requests are looked at. */
  readonly tickMs: number;
  /** Memory limit for jobs that set none. */
  readonly memoryMb: number;
  /** CPU limit for jobs that set none; none: unlimited. */
  readonly cpus?: number | undefined;
  /** Backoff between restarts of a continuous job: 1 s, 2 s, 4 s … capped here. */
  readonly maxBackoffS: number;
  /** A continuous process that stayed up this long restarts after 1 s again. */
  readonly stableS: number;
  /** Identifies this runner in claims, so several deployer processes share the work. */
  readonly owner: string;
}

export const DEFAULT_RUNNER_OPTIONS: Omit<JobRunnerOptions, "owner"> = {
  tickMs: 1000,
  memoryMb: 512,
  maxBackoffS: 60,
  stableS: 60,
};

/**
 * A continuous job whose process exits 0 this many times in a row, each time before it was up
 * `stableS`, is a one-off command declared as continuous (`custom: echo -n` in a Procfile): it is
 * stopped instead of being restarted forever, each restart a new container.
 */
export const ONE_SHOT_EXITS = 5;

/** The delay before the n-th restart in a row (n from 0): 1, 2, 4 … seconds, capped. */
export function backoffSeconds(failuresInARow: number, maxS: number): number {
  return Math.min(maxS, 2 ** Math.min(failuresInARow, 30));
}

interface Supervisor {
  readonly revision: number;
  stopped: boolean;
  process: JobProcess | undefined;
  readonly wake: AbortController;
  done: Promise<void>;
}

interface OneShot {
  readonly def: JobDefinition;
  process: JobProcess | undefined;
  stopped: boolean;
  done: Promise<void>;
}

const key = (j: { tool: string; name: string }) => `${j.tool}/${j.name}`;

/**
 * Scheduled jobs taken per tick, earliest first; more due at once wait for the next tick (a second
 * later by default), so one tick's work stays bounded however many jobs come due together.
 */
export const DUE_PER_TICK = 500;

/**
 * Runs jobs on the local profile (deployer role). Every tick it reads the continuous definitions, the
 * scheduled jobs that are due (the store keeps them ordered by next fire time, so a tick's work follows
 * the due jobs, not every job of every tool) and the run requests, and: supervises continuous jobs
 * (restarted when they exit, with backoff; replaced when their definition changes or `jobs restart`
 * bumps the revision), fires scheduled jobs whose time came (never two runs of one job at once: a due
 * run while the previous one is still running is recorded as skipped), starts requested one-off runs,
 * retries failed attempts, kills runs past their timeout, and stops whatever was deleted. A restart of
 * the runner loses no definition (they are in the store); schedules continue from the next time due,
 * times missed while no runner ran are not caught up (as Kubernetes CronJobs with a short starting
 * deadline).
 */
export class JobRunner {
  private readonly supervisors = new Map<string, Supervisor>();
  private readonly oneShots = new Map<string, OneShot>();
  /** When start() ran: a due time older than that by more than a lease was missed while no runner ran. */
  private startedAt = -Infinity;
  /**
   * Continuous jobs stopped as one-off commands, with the revision stopped: a new revision (a release,
   * `jobs restart`) tries again. Kept in memory, so a restarted deployer also tries again once.
   */
  private readonly oneShotRevision = new Map<string, number>();
  /** The continuous definitions as of `continuousSeen` (the store's version of them). */
  private continuous = new Map<string, JobDefinition>();
  private continuousSeen: string | undefined;
  /** When the claims of the continuous jobs were last renewed (monotonic ms); see claimContinuous. */
  private claimedAt = -Infinity;
  /** A supervisor ended: its job may need starting again before the next renewal. */
  private claimsDue = false;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly deps: {
      readonly store: JobsStore;
      readonly runtime: JobsRuntime;
      readonly envFor: EnvFor;
      readonly logger: Logger;
      readonly options: JobRunnerOptions;
      readonly now?: () => Date;
    },
  ) {}

  /** Cleans up after a previous runner (leftover containers, runs it never finished) and starts ticking. */
  async start(): Promise<void> {
    const { store, runtime, logger } = this.deps;
    this.startedAt = this.now().getTime();
    // Definitions stored before the indexes existed (or by an older Slipway) join them here.
    await store.indexAllJobs();
    const removed = await runtime.removeLeftovers();
    if (removed > 0) logger.info({ removed }, "removed job containers left by an earlier run");
    for (const job of await store.listAllJobs()) {
      // The cluster follower owns those runs: their pods did not go with this process.
      if (job.runs_on === "cluster") continue;
      for (const run of await store.listRuns(job.tool, job.name)) {
        if (run.status !== "running") continue;
        await store.updateRun(job.tool, job.name, run.id, {
          status: "lost",
          reason: "Slipway restarted while it ran; its process was removed",
          finished_at: this.now().toISOString(),
        });
      }
    }
    const loop = () => {
      if (this.closed) return;
      this.ticking = this.tick()
        .catch((e) => logger.warn({ err: e }, "jobs tick failed"))
        .finally(() => {
          if (!this.closed) this.timer = setTimeout(loop, this.deps.options.tickMs);
        });
    };
    loop();
  }

  /** Stops every process this runner started; definitions stay, the next runner starts them again. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    await Promise.all([
      ...[...this.supervisors.keys()].map((k) => this.stopSupervisor(k)),
      ...[...this.oneShots.values()].map(async (o) => {
        o.stopped = true;
        await o.process?.kill();
        await o.done;
      }),
    ]);
  }

  async tick(): Promise<void> {
    const { store } = this.deps;
    // Jobs the cluster runs (Deployments, CronJobs) are not in these indexes: not this runner's. The
    // continuous definitions are read again only when they changed (the version is read first, so a
    // change during the read is seen next tick).
    const version = await store.continuousVersion();
    const changed = version !== this.continuousSeen;
    if (changed) {
      this.continuous = new Map((await store.listContinuousJobs()).map((j) => [key(j), j]));
      this.continuousSeen = version;
    }
    const continuous = this.continuous;

    for (const [k, sup] of this.supervisors) {
      if (continuous.get(k)?.revision !== sup.revision) await this.stopSupervisor(k);
    }
    // One read per run in progress: a deleted job's run stops within a tick.
    for (const shot of this.oneShots.values()) {
      if (shot.stopped) continue;
      const def = await store.getJob(shot.def.tool, shot.def.name);
      if (!def || def.runs_on === "cluster") {
        shot.stopped = true;
        await shot.process?.kill();
      }
    }
    for (const [k, revision] of this.oneShotRevision) {
      if (continuous.get(k)?.revision !== revision) this.oneShotRevision.delete(k);
    }

    if (changed || this.claimsDue || performance.now() - this.claimedAt >= this.leaseMs() / 3)
      await this.claimContinuous(continuous);
    const now = this.now();
    for (const entry of await store.dueSchedules(now, DUE_PER_TICK)) await this.schedule(entry, now);
    for (const request of await store.takeRunRequests()) {
      const def = await store.getJob(request.tool, request.job);
      if (def && def.runs_on !== "cluster" && def.type !== "continuous")
        this.fire(def, "manual", request.run_id);
    }
  }

  /**
   * Claims (or renews) every continuous job in one round trip and supervises those it got. Done when
   * the definitions changed, when a supervisor ended, and otherwise a third of a lease apart (5 s by
   * default): a claim outlives two missed renewals, and a job a crashed runner held is taken over
   * within a lease and a third.
   */
  private async claimContinuous(continuous: ReadonlyMap<string, JobDefinition>): Promise<void> {
    this.claimsDue = false;
    this.claimedAt = performance.now();
    const wanted = [...continuous].filter(([k, def]) => this.oneShotRevision.get(k) !== def.revision);
    const held = await this.deps.store.claimAll(
      wanted.map(([k]) => `continuous:${k}`),
      this.deps.options.owner,
      this.leaseMs(),
    );
    wanted.forEach(([k, def], i) => {
      if (held[i] && !this.supervisors.has(k)) this.supervise(def);
    });
  }

  private async schedule(entry: ScheduleEntry, now: Date): Promise<void> {
    const { store } = this.deps;
    const def = await store.getJob(entry.tool, entry.name);
    // The store keeps the schedule with the definitions; a job deleted or changed since the read is skipped.
    if (!def?.cron || def.type !== "scheduled" || def.runs_on === "cluster") return;
    const next = nextRun(def.cron, now);
    // With several deployer processes, the one that moves the due time fires it.
    if (!(await store.moveSchedule(entry, def.cron, next))) return;
    await store.updateStatus(def.tool, def.name, { next_run_at: next.toISOString() });
    if (entry.at === undefined) return; // a new job or cron: its first time is now known
    if (entry.at.getTime() < this.startedAt - this.leaseMs()) return; // missed while no runner ran
    this.fire(def, "schedule", newId());
  }

  /** Starts a scheduled or one-off run with its retries, unless one is still running. */
  private fire(def: JobDefinition, trigger: RunTrigger, requestId: string): void {
    const k = key(def);
    if (this.oneShots.has(k)) {
      void this.recordSkipped(def, trigger, requestId);
      return;
    }
    const shot: OneShot = { def, process: undefined, stopped: false, done: Promise.resolve() };
    shot.done = this.runWithRetries(def, trigger, requestId, shot)
      .catch((e) => this.deps.logger.warn({ tool: def.tool, job: def.name, err: e }, "job run failed"))
      .finally(() => this.oneShots.delete(k));
    this.oneShots.set(k, shot);
  }

  private async recordSkipped(def: JobDefinition, trigger: RunTrigger, requestId: string): Promise<void> {
    const at = this.now().toISOString();
    await this.deps.store.addRun({
      id: requestId,
      request_id: requestId,
      tool: def.tool,
      job: def.name,
      trigger,
      attempt: 1,
      status: "skipped",
      exit_code: null,
      reason: "skipped: still running",
      image: def.image,
      started_at: at,
      finished_at: at,
    });
    this.deps.logger.info(
      { tool: def.tool, job: def.name },
      "run skipped: the previous one is still running",
    );
  }

  private async runWithRetries(
    def: JobDefinition,
    trigger: RunTrigger,
    requestId: string,
    shot: OneShot,
  ): Promise<void> {
    const { store } = this.deps;
    for (let attempt = 1; attempt <= def.retry + 1 && !shot.stopped; attempt++) {
      const runId = attempt === 1 ? requestId : newId();
      const result = await this.runOnce(def, {
        runId,
        requestId,
        trigger: attempt === 1 ? trigger : "retry",
        attempt,
        timeoutS: def.timeout_s,
        onProcess: (p) => (shot.process = p),
        isStopped: () => shot.stopped,
      });
      const last = result.status !== "failed" || attempt > def.retry;
      await store.updateStatus(def.tool, def.name, {
        state: !last
          ? "pending"
          : def.type === "scheduled"
            ? "waiting"
            : result.status === "succeeded"
              ? "succeeded"
              : "failed",
        message: result.reason,
      });
      if (last) return;
    }
  }

  /** One process: a run record, its log, its exit. Never throws; a start failure is a failed run. */
  private async runOnce(
    def: JobDefinition,
    o: {
      runId: string;
      requestId: string;
      trigger: RunTrigger;
      attempt: number;
      timeoutS: number | undefined;
      onProcess: (p: JobProcess) => void;
      isStopped: () => boolean;
    },
  ): Promise<{ status: RunStatus; exitCode: number | null; reason: string | null; upMs: number }> {
    const { store, runtime } = this.deps;
    const log = this.deps.logger.child({ tool: def.tool, job: def.name, runId: o.runId });
    const startedAt = this.now();
    const run: JobRun = {
      id: o.runId,
      request_id: o.requestId,
      tool: def.tool,
      job: def.name,
      trigger: o.trigger,
      attempt: o.attempt,
      status: "running",
      exit_code: null,
      reason: null,
      image: def.image,
      started_at: startedAt.toISOString(),
      finished_at: null,
    };
    await store.addRun(run);
    await store.updateStatus(def.tool, def.name, {
      state: "running",
      last_run_id: run.id,
      last_started_at: run.started_at,
      message: null,
    });
    // Appends in order, one batch after the other; a failing append loses lines, never the run.
    let appended: Promise<void> = Promise.resolve();
    const append = (lines: string[]) => {
      appended = appended
        .then(() => store.appendLog(def.tool, def.name, run.id, lines))
        .catch(() => undefined);
    };
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    let status: RunStatus;
    let exitCode: number | null = null;
    let reason: string | null = null;
    try {
      const env = await this.deps.envFor(def.tool);
      const proc = await runtime.start(
        {
          tool: def.tool,
          job: def.name,
          runId: run.id,
          image: def.image,
          releaseId: def.release_id,
          command: def.command,
          env,
          memoryMb: def.memory_mb ?? this.deps.options.memoryMb,
          cpus: def.cpus ?? this.deps.options.cpus,
        },
        append,
      );
      o.onProcess(proc);
      if (o.isStopped()) await proc.kill();
      if (o.timeoutS !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          void proc.kill();
        }, o.timeoutS * 1000);
      }
      const exit = await proc.exited;
      exitCode = exit.exitCode;
      if (exit.exceeded) {
        status = "failed";
        reason = describeLimit(exit.exceeded);
        append([`slipway: the job ${reason}; it was stopped`]);
      } else if (timedOut) {
        status = "timeout";
        reason = `killed after the timeout of ${o.timeoutS} s`;
      } else if (o.isStopped()) {
        status = "stopped";
        reason = "stopped";
      } else if (exitCode === 0) {
        status = "succeeded";
      } else {
        status = "failed";
        reason = `exited with code ${exitCode}`;
      }
      if (exit.outputIncomplete) {
        const note = `output incomplete: ${exit.outputIncomplete}`;
        append([`slipway: ${note}`]);
        reason = reason ? `${reason}; ${note}` : note;
      }
    } catch (error) {
      status = "failed";
      reason = `could not start: ${errorMessage(error)}`;
      append([`slipway: ${reason}`]);
    } finally {
      if (timer) clearTimeout(timer);
    }
    await appended;
    const finishedAt = this.now();
    await store.updateRun(def.tool, def.name, run.id, {
      status,
      exit_code: exitCode,
      reason,
      finished_at: finishedAt.toISOString(),
    });
    await store.updateStatus(def.tool, def.name, {
      last_exit_code: exitCode,
      last_finished_at: finishedAt.toISOString(),
    });
    log.info({ status, exitCode, attempt: o.attempt }, "job run ended");
    return { status, exitCode, reason, upMs: finishedAt.getTime() - startedAt.getTime() };
  }

  private supervise(def: JobDefinition): void {
    const k = key(def);
    const sup: Supervisor = {
      revision: def.revision,
      stopped: false,
      process: undefined,
      wake: new AbortController(),
      done: Promise.resolve(),
    };
    sup.done = this.superviseLoop(def, sup)
      .catch((e) => this.deps.logger.warn({ tool: def.tool, job: def.name, err: e }, "supervisor failed"))
      .finally(() => {
        if (this.supervisors.get(k) === sup) this.supervisors.delete(k);
        this.claimsDue = true;
        void this.deps.store.release(`continuous:${k}`, this.deps.options.owner).catch(() => undefined);
      });
    this.supervisors.set(k, sup);
  }

  private async superviseLoop(def: JobDefinition, sup: Supervisor): Promise<void> {
    const { store, options } = this.deps;
    let restarts = 0;
    let failuresInARow = 0;
    let quickCleanExits = 0;
    await store.updateStatus(def.tool, def.name, { restarts: 0, message: null });
    while (!sup.stopped) {
      const runId = newId();
      const result = await this.runOnce(def, {
        runId,
        requestId: runId,
        trigger: "continuous",
        attempt: restarts + 1,
        timeoutS: undefined,
        onProcess: (p) => (sup.process = p),
        isStopped: () => sup.stopped,
      });
      sup.process = undefined;
      if (sup.stopped) break;
      const quick = result.upMs < options.stableS * 1000;
      quickCleanExits = quick && result.status === "succeeded" ? quickCleanExits + 1 : 0;
      if (quickCleanExits >= ONE_SHOT_EXITS) {
        this.oneShotRevision.set(key(def), def.revision);
        const message = oneShotMessage(def, options.stableS);
        await store.updateStatus(def.tool, def.name, { state: "stopped", restarts, message });
        await store.appendLog(def.tool, def.name, runId, [`slipway: ${message}`]).catch(() => undefined);
        this.deps.logger.warn(
          { tool: def.tool, job: def.name, exits: quickCleanExits },
          "continuous job stopped: it looks like a one-off command",
        );
        return;
      }
      failuresInARow = result.upMs >= options.stableS * 1000 ? 0 : failuresInARow;
      const delay = backoffSeconds(failuresInARow, options.maxBackoffS);
      failuresInARow++;
      restarts++;
      await store.updateStatus(def.tool, def.name, {
        state: "restarting",
        restarts,
        message: `${result.reason ?? "exited"}; restarting in ${delay} s`,
      });
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay * 1000);
        sup.wake.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }

  private async stopSupervisor(k: string): Promise<void> {
    const sup = this.supervisors.get(k);
    if (!sup) return;
    sup.stopped = true;
    sup.wake.abort();
    await sup.process?.kill();
    await sup.done;
    this.supervisors.delete(k);
  }

  private leaseMs(): number {
    return this.deps.options.tickMs * 5 + 10_000;
  }

  private now(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }
}

/** Why a continuous job was stopped as a one-off command, and how to declare it as one (by where it was defined). */
function oneShotMessage(def: JobDefinition, stableS: number): string {
  const how =
    def.source === "config"
      ? `declare it as one-off: in the Procfile give it a type other than web, worker, *worker or clock, or in slipway.yaml set component_type: one-off, then \`slipway jobs run ${def.name}\` runs it once`
      : `define it without --continuous (\`slipway jobs delete ${def.name}\`, then \`slipway jobs run ${def.name} --command ...\`) to run it once`;
  return `stopped: it looks like a one-off command (it exited 0 ${ONE_SHOT_EXITS} times in a row, each within ${stableS} s); ${how}; \`slipway jobs restart ${def.name}\` starts it again`;
}
