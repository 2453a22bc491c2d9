import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import type { Logger } from "../../platform/logger.js";
import { SlipwayError, TransientError, errorMessage } from "../../platform/errors.js";
import { JOBS, QUEUE_OF, fairGroupOf, type JobName, type JobPayload } from "../../domain/pipeline/jobs.js";
import { FairSlots } from "./fair-slots.js";

/** What a handler knows about the run it is in: it marks a build failed only on the final attempt. */
export interface JobContext {
  readonly signal: AbortSignal;
  readonly attempt: number;
  readonly finalAttempt: boolean;
}

export type Handlers = { [N in JobName]: (payload: JobPayload<N>, context: JobContext) => Promise<void> };

const ATTEMPTS = 3;
/**
 * How long a job that found its group full stays parked when nobody promotes it. Normally the job that
 * frees the slot promotes it at once; this only bounds the wait after a crash of that process.
 */
const PARK_MS = 30_000;

export interface WorkerOptions {
  /** Running jobs per fairness group (per tool for builds); default 1. */
  readonly perGroup?: Partial<Record<JobName, number>>;
  /** Lease of a group slot; a crashed holder frees it after this long. */
  readonly leaseMs?: number;
}

/** Enqueues typed jobs. Job ids are the build/release ids, so re-adding the same job is a no-op. */
export class JobQueue {
  private constructor(
    private readonly connection: Redis,
    private readonly queues: { [N in JobName]: Queue },
    private readonly prefix: string,
    private readonly fair: { [N in JobName]: FairSlots },
  ) {}

  static create(redisUrl: string, prefix = "slipway"): JobQueue {
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const make = (name: JobName) => new Queue(QUEUE_OF[name], { connection, prefix });
    const fair = (name: JobName) => new FairSlots(connection, `${prefix}:${QUEUE_OF[name]}`);
    return new JobQueue(connection, { build: make("build"), deploy: make("deploy") }, prefix, {
      build: fair("build"),
      deploy: fair("deploy"),
    });
  }

  async enqueue<N extends JobName>(name: N, payload: JobPayload<N>, jobId: string): Promise<void> {
    JOBS[name].parse(payload);
    const group = fairGroupOf(name, payload);
    // Priority 0 would put the job before every prioritized one, so grouped jobs always get >= 1.
    const priority = group === undefined ? undefined : await this.fair[name].queued(group, jobId);
    await this.queues[name].add(name, payload, {
      jobId,
      ...(priority === undefined ? {} : { priority }),
      attempts: ATTEMPTS,
      backoff: { type: "exponential", delay: 2000 },
      removeOnComplete: { age: 7 * 24 * 3600, count: 10_000 },
      removeOnFail: { age: 30 * 24 * 3600 },
    });
  }

  /** Removes a job that has not started yet; false when it already runs or is gone. */
  async removeWaiting(name: JobName, jobId: string): Promise<boolean> {
    const job = await this.queues[name].getJob(jobId);
    if (!job) return false;
    const state = await job.getState();
    if (state !== "waiting" && state !== "delayed" && state !== "prioritized") return false;
    await job.remove();
    const parsed = JOBS[name].safeParse(job.data);
    const group = parsed.success ? fairGroupOf(name, parsed.data as JobPayload<typeof name>) : undefined;
    if (group !== undefined) await this.fair[name].forget(group, jobId);
    return true;
  }

  /** Job counts by state; `waiting` includes prioritized jobs (BullMQ keeps them apart). */
  async counts(name: JobName): Promise<Record<string, number>> {
    const c = await this.queues[name].getJobCounts(
      "waiting",
      "prioritized",
      "active",
      "delayed",
      "completed",
      "failed",
    );
    const { prioritized, ...rest } = c;
    return { ...rest, waiting: (c.waiting ?? 0) + (prioritized ?? 0) };
  }

  /**
   * Promotes the group's first parked job after a slot was freed. A parked job that is gone or no
   * longer delayed (cancelled, or its park time ran out) is skipped.
   */
  private async promoteParked(name: JobName, group: string, logger: Logger): Promise<void> {
    for (let i = 0; i < 10; i++) {
      const id = await this.fair[name].nextParked(group);
      if (id === undefined) return;
      const job = await this.queues[name].getJob(id);
      if (!job || !(await job.isDelayed())) continue;
      try {
        await job.promote();
        return;
      } catch (error) {
        logger.debug({ job: name, jobId: id, error: errorMessage(error) }, "parked job not promoted");
      }
    }
  }

  /**
   * Starts workers for the given job names. Start-up fails if a name has no handler. Handlers throw
   * SlipwayErrors for permanent failures (no retry) and anything else for transient ones (retried).
   */
  startWorkers(
    redisUrl: string,
    handlers: Partial<Handlers>,
    concurrency: Partial<Record<JobName, number>>,
    logger: Logger,
    options: WorkerOptions = {},
  ): Workers {
    const workers: Worker[] = [];
    const connections: Redis[] = [];
    const controllers = new Map<string, AbortController>();
    for (const name of Object.keys(handlers) as JobName[]) {
      const handler = handlers[name] as ((p: unknown, c: JobContext) => Promise<void>) | undefined;
      if (!handler) throw new Error(`no handler for job "${name}"`);
      const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
      connections.push(connection);
      const fair = new FairSlots(connection, `${this.prefix}:${QUEUE_OF[name]}`, options.leaseMs);
      const cap = options.perGroup?.[name] ?? 1;
      const worker = new Worker(
        QUEUE_OF[name],
        async (job: Job, token?: string) => {
          const parsed = JOBS[name].safeParse(job.data);
          if (!parsed.success) throw new UnrecoverableError(`malformed ${name} job: ${parsed.error.message}`);
          const group = fairGroupOf(name, parsed.data as JobPayload<typeof name>);
          const lease = group === undefined ? undefined : await fair.acquire(group, job.id ?? "", cap);
          if (group !== undefined && lease === undefined) {
            // The group is at its cap: back to the delayed set until a slot frees (see PARK_MS).
            await fair.park(group, job.id ?? "", job.opts.priority ?? 1);
            await job.moveToDelayed(Date.now() + PARK_MS, token);
            // The holder may have finished between our try and the park: then nobody would promote us.
            if (await fair.hasFree(group, cap)) await this.promoteParked(name, group, logger);
            throw new DelayedError();
          }
          const controller = new AbortController();
          controllers.set(job.id ?? "", controller);
          try {
            const attempt = job.attemptsMade + 1;
            await handler(parsed.data, {
              signal: controller.signal,
              attempt,
              finalAttempt: attempt >= (job.opts.attempts ?? 1),
            });
          } catch (error) {
            if (error instanceof SlipwayError && !(error instanceof TransientError)) {
              throw new UnrecoverableError(error.message);
            }
            throw error;
          } finally {
            controllers.delete(job.id ?? "");
            if (lease && group !== undefined) {
              await lease.release().catch(() => undefined);
              await this.promoteParked(name, group, logger).catch((e: unknown) =>
                logger.warn({ job: name, group, error: errorMessage(e) }, "could not promote a parked job"),
              );
            }
          }
        },
        { connection, prefix: this.prefix, concurrency: concurrency[name] ?? 1 },
      );
      worker.on("failed", (job, error) =>
        logger.warn({ job: name, jobId: job?.id, error: errorMessage(error) }, "job failed"),
      );
      worker.on("error", (error) => logger.error({ job: name, error: errorMessage(error) }, "worker error"));
      workers.push(worker);
    }
    return {
      abort: (jobId: string) => {
        const c = controllers.get(jobId);
        c?.abort();
        return c !== undefined;
      },
      close: async () => {
        for (const c of controllers.values()) c.abort();
        await Promise.all(workers.map((w) => w.close()));
        // Workers do not close connections they were given.
        await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.close()));
    await this.connection.quit();
  }
}

export interface Workers {
  /** Aborts a job running in this process; false when it does not run here. */
  abort(jobId: string): boolean;
  close(): Promise<void>;
}
