import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from "bullmq";
import type { Redis } from "ioredis";
import {
  closeConnection,
  commandConnection,
  isConnectionError,
  workerConnection,
} from "../redis/connection.js";
import type { Logger } from "../../platform/logger.js";
import { SlipwayError, TransientError } from "../../platform/errors.js";
import {
  QUEUE_JOBS,
  QUEUE_OF,
  fairGroupOf,
  type QueueJobName,
  type QueueJobPayload,
} from "../../domain/pipeline/queue-jobs.js";
import { FairSlots } from "./fair-slots.js";

/** What a handler knows about the run it is in: it marks a build failed only on the final attempt. */
export interface JobContext {
  readonly signal: AbortSignal;
  readonly attempt: number;
  readonly finalAttempt: boolean;
}

export type Handlers = {
  [N in QueueJobName]: (payload: QueueJobPayload<N>, context: JobContext) => Promise<void>;
};

const ATTEMPTS = 3;
/**
 * How long a job that found its group full stays parked when nobody promotes it. Normally the job that
 * frees the slot promotes it at once; this only bounds the wait after a crash of that process.
 */
const PARK_MS = 30_000;
/** How long shutdown waits for workers to stop on their own while Redis is up. */
const WORKER_CLOSE_MS = 5000;

export interface WorkerOptions {
  /** Running jobs per fairness group (per tool for builds); default 1. */
  readonly perGroup?: Partial<Record<QueueJobName, number>>;
  /** Lease of a group slot; a crashed holder frees it after this long. */
  readonly leaseMs?: number;
}

/** Enqueues typed jobs. Job ids are the build/release ids, so re-adding the same job is a no-op. */
export class JobQueue {
  private constructor(
    private readonly connection: Redis,
    private readonly queues: { [N in QueueJobName]: Queue },
    private readonly prefix: string,
    private readonly fair: { [N in QueueJobName]: FairSlots },
  ) {}

  static create(redisUrl: string, prefix = "slipway"): JobQueue {
    // Not a worker connection: enqueueing answers a request, so it fails fast like the store does.
    const connection = commandConnection(redisUrl);
    const make = (name: QueueJobName) => {
      const queue = new Queue(QUEUE_OF[name], { connection, prefix });
      // Its callers get the errors; without a listener BullMQ prints each reconnect attempt's error.
      queue.on("error", () => undefined);
      return queue;
    };
    const fair = (name: QueueJobName) => new FairSlots(connection, `${prefix}:${QUEUE_OF[name]}`);
    return new JobQueue(connection, { build: make("build"), deploy: make("deploy") }, prefix, {
      build: fair("build"),
      deploy: fair("deploy"),
    });
  }

  async enqueue<N extends QueueJobName>(name: N, payload: QueueJobPayload<N>, jobId: string): Promise<void> {
    QUEUE_JOBS[name].parse(payload);
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
  async removeWaiting(name: QueueJobName, jobId: string): Promise<boolean> {
    const job = await this.queues[name].getJob(jobId);
    if (!job) return false;
    const state = await job.getState();
    if (state !== "waiting" && state !== "delayed" && state !== "prioritized") return false;
    await job.remove();
    const parsed = QUEUE_JOBS[name].safeParse(job.data);
    const group = parsed.success ? fairGroupOf(name, parsed.data as QueueJobPayload<typeof name>) : undefined;
    if (group !== undefined) await this.fair[name].forget(group, jobId);
    return true;
  }

  /** Job counts by state; `waiting` includes prioritized jobs (BullMQ keeps them apart). */
  async counts(name: QueueJobName): Promise<Record<string, number>> {
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
  private async promoteParked(name: QueueJobName, group: string, logger: Logger): Promise<void> {
    for (let i = 0; i < 10; i++) {
      const id = await this.fair[name].nextParked(group);
      if (id === undefined) return;
      const job = await this.queues[name].getJob(id);
      if (!job || !(await job.isDelayed())) continue;
      try {
        await job.promote();
        return;
      } catch (error) {
        logger.debug({ job: name, jobId: id, err: error }, "parked job not promoted");
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
    concurrency: Partial<Record<QueueJobName, number>>,
    logger: Logger,
    options: WorkerOptions = {},
  ): Workers {
    const workers: Worker[] = [];
    const connections: Redis[] = [];
    const controllers = new Map<string, AbortController>();
    for (const name of Object.keys(handlers) as QueueJobName[]) {
      const handler = handlers[name] as ((p: unknown, c: JobContext) => Promise<void>) | undefined;
      if (!handler) throw new Error(`no handler for job "${name}"`);
      const connection = workerConnection(redisUrl);
      connections.push(connection);
      const fair = new FairSlots(connection, `${this.prefix}:${QUEUE_OF[name]}`, options.leaseMs);
      const cap = options.perGroup?.[name] ?? 1;
      const worker = new Worker(
        QUEUE_OF[name],
        async (job: Job, token?: string) => {
          const parsed = QUEUE_JOBS[name].safeParse(job.data);
          if (!parsed.success) throw new UnrecoverableError(`malformed ${name} job: ${parsed.error.message}`);
          const group = fairGroupOf(name, parsed.data as QueueJobPayload<typeof name>);
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
                logger.warn({ job: name, group, err: e }, "could not promote a parked job"),
              );
            }
          }
        },
        { connection, prefix: this.prefix, concurrency: concurrency[name] ?? 1 },
      );
      worker.on("failed", (job, error) =>
        logger.warn({ job: name, jobId: job?.id, err: error }, "job failed"),
      );
      // Redis being down is logged once by RedisHealth; a worker repeats it at every reconnect attempt.
      worker.on("error", (error) =>
        isConnectionError(error)
          ? logger.debug({ job: name, err: error }, "worker waits for Redis")
          : logger.error({ job: name, err: error }, "worker error"),
      );
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
        // A worker's close waits for its blocking fetch, which waits for Redis forever: with Redis down
        // (or a close that takes too long) the workers are cut off instead. Their jobs were aborted above;
        // a job cut off mid-way is stalled in Redis and runs again on the next start.
        const redisUp = connections.every((c) => c.status === "ready");
        const closed = Promise.all(workers.map((w) => w.close()));
        if (!(await within(closed, redisUp ? WORKER_CLOSE_MS : 0))) {
          // BullMQ's disconnect waits for a connection that may never come up: not awaited for long.
          await within(Promise.all(workers.map((w) => w.disconnect())), 1000);
          logger.warn({ redisUp }, "workers cut off without waiting for Redis");
        }
        // Workers do not close connections they were given.
        await Promise.all(connections.map(closeConnection));
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.queues).map((q) => q.close()));
    await closeConnection(this.connection);
  }
}

export interface Workers {
  /** Aborts a job running in this process; false when it does not run here. */
  abort(jobId: string): boolean;
  close(): Promise<void>;
}

/** True when `work` settled within `ms`; its failure is not the caller's concern here. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = work.then(
    () => true,
    () => true,
  );
  const late = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}
