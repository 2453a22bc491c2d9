import { Queue, UnrecoverableError, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import type { Logger } from "../../platform/logger.js";
import { SlipwayError, TransientError, errorMessage } from "../../platform/errors.js";
import { JOBS, QUEUE_OF, type JobName, type JobPayload } from "../../domain/pipeline/jobs.js";

/** What a handler knows about the run it is in: it marks a build failed only on the final attempt. */
export interface JobContext {
  readonly signal: AbortSignal;
  readonly attempt: number;
  readonly finalAttempt: boolean;
}

export type Handlers = { [N in JobName]: (payload: JobPayload<N>, context: JobContext) => Promise<void> };

const ATTEMPTS = 3;

/** Enqueues typed jobs. Job ids are the build/release ids, so re-adding the same job is a no-op. */
export class JobQueue {
  private constructor(
    private readonly connection: Redis,
    private readonly queues: { [N in JobName]: Queue },
    private readonly prefix: string,
  ) {}

  static create(redisUrl: string, prefix = "slipway"): JobQueue {
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    const make = (name: JobName) => new Queue(QUEUE_OF[name], { connection, prefix });
    return new JobQueue(connection, { build: make("build"), deploy: make("deploy") }, prefix);
  }

  async enqueue<N extends JobName>(name: N, payload: JobPayload<N>, jobId: string): Promise<void> {
    JOBS[name].parse(payload);
    await this.queues[name].add(name, payload, {
      jobId,
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
    return true;
  }

  async counts(name: JobName): Promise<Record<string, number>> {
    return this.queues[name].getJobCounts("waiting", "active", "delayed", "completed", "failed");
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
  ): Workers {
    const workers: Worker[] = [];
    const connections: Redis[] = [];
    const controllers = new Map<string, AbortController>();
    for (const name of Object.keys(handlers) as JobName[]) {
      const handler = handlers[name] as ((p: unknown, c: JobContext) => Promise<void>) | undefined;
      if (!handler) throw new Error(`no handler for job "${name}"`);
      const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
      connections.push(connection);
      const worker = new Worker(
        QUEUE_OF[name],
        async (job: Job) => {
          const parsed = JOBS[name].safeParse(job.data);
          if (!parsed.success) throw new UnrecoverableError(`malformed ${name} job: ${parsed.error.message}`);
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
