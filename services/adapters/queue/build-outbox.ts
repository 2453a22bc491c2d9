import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { Build } from "../../domain/builds/build.js";
import type { Logger } from "../../platform/logger.js";
import { closeConnection, commandConnection, isConnectionError } from "../redis/connection.js";
import { releaseLease, takeLease } from "../redis/lease.js";
import { buildOutboxKeys } from "../store/redis-store.js";
import type { JobQueue } from "./bullmq.js";

/** Entries taken per round: one LRANGE, one SREM, one MGET, then the enqueues in one pipeline. */
const BATCH = 500;
const LOCK_MS = 15_000;
/** Wake-ups come over pub/sub; the poll only picks up what a crashed process left behind. */
const POLL_MS = 2_000;

/**
 * Moves builds from the store's outbox (written by StateStore.intakePush in the same atomic step as
 * the build record) into the BullMQ build queue.
 *
 * Why an outbox: the webhook answers after one Redis script instead of after BullMQ's add, and a build
 * superseded before the mover reaches it (a burst of pushes to one branch) never enters BullMQ at all.
 * Nothing is lost in a crash: an entry leaves the list only after its job is in BullMQ, and adding a job
 * whose id exists is a no-op, so a round cut short is simply done again. One mover runs at a time
 * (a lock in Redis), in whichever process holds the lock.
 *
 * Order within a round matters: ids leave `unmoved` before their records are read, so a push that
 * supersedes a build after that point sees it as taken and queues an `x:<id>` entry, and the build
 * is taken off the queue again by a later round. A build superseded before that point is read as
 * superseded here and never enqueued.
 */
export class BuildOutbox {
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly owner = randomBytes(8).toString("hex");

  private constructor(
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    private readonly queue: JobQueue,
    private readonly keys: ReturnType<typeof buildOutboxKeys>,
    private readonly logger: Logger,
  ) {}

  /** Subscribes to wake-ups and moves whatever is already waiting (left by a crash). */
  static async start(
    redisUrl: string,
    queue: JobQueue,
    logger: Logger,
    queuePrefix = "slipway",
  ): Promise<BuildOutbox> {
    const outbox = new BuildOutbox(
      commandConnection(redisUrl, { enableAutoPipelining: true }),
      commandConnection(redisUrl),
      queue,
      buildOutboxKeys(queuePrefix),
      logger,
    );
    outbox.subscriber.on("message", () => outbox.kick());
    await outbox.subscriber.subscribe(outbox.keys.channel);
    outbox.timer = setInterval(() => outbox.kick(), POLL_MS);
    outbox.timer.unref();
    outbox.kick();
    return outbox;
  }

  /** Starts a round now, or right after the one running. */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .catch((error: unknown) => {
        // While Redis is down this repeats every poll; RedisHealth has said so once already.
        const fields = { err: error };
        const what = "builds not moved to the queue yet; will retry";
        if (isConnectionError(error)) this.logger.debug(fields, what);
        else this.logger.warn(fields, what);
      })
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Resolves once the outbox is empty (tests: "the build is in the queue now"). */
  async drained(): Promise<void> {
    for (;;) {
      this.kick();
      while (this.running) await this.running;
      if ((await this.redis.llen(this.keys.list)) === 0) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.running;
    await releaseLease(this.redis, this.lockKey(), this.owner).catch(() => undefined);
    await Promise.all([closeConnection(this.subscriber), closeConnection(this.redis)]);
  }

  private async drain(): Promise<void> {
    while (!this.closed) {
      // Another process moves them; it is woken by the same messages.
      if (!(await takeLease(this.redis, this.lockKey(), this.owner, LOCK_MS))) return;
      const entries = await this.redis.lrange(this.keys.list, 0, BATCH - 1);
      if (entries.length === 0) return;
      await this.move(entries);
      // Only the lock holder removes entries, always from the head; pushes only append. A round that
      // outlived its lock trims nothing: the next holder read (and trims) these same entries, and a
      // second trim would drop entries that nobody moved yet.
      const trimmed = await this.redis.eval(
        TRIM,
        2,
        this.lockKey(),
        this.keys.list,
        this.owner,
        entries.length,
      );
      if (trimmed !== 1) return;
      if (entries.length < BATCH) return;
    }
  }

  private async move(entries: string[]): Promise<void> {
    const ids = entries.filter((e) => !e.startsWith("x:"));
    const enqueued = new Set<string>();
    if (ids.length > 0) {
      await this.redis.srem(this.keys.unmoved, ...ids);
      const records = await this.redis.mget(...ids.map((id) => this.keys.buildKey(id)));
      const jobs: Promise<void>[] = [];
      records.forEach((raw, i) => {
        if (raw === null) return;
        const build = JSON.parse(raw) as Build;
        // Superseded or cancelled before it got here: it never enters the queue.
        if (build.status !== "pending") return;
        enqueued.add(build.id);
        jobs.push(this.queue.enqueue("build", { build_id: build.id, tool: build.tool }, ids[i]!));
      });
      await Promise.all(jobs);
    }
    // Superseded after a mover took it: take it off the queue unless it already started (then the
    // builder finds it superseded and does not run it). Skipped when this very round took it and did
    // not enqueue it: then it is in no queue.
    const taken = new Set(ids);
    const removals = entries
      .filter((e) => e.startsWith("x:"))
      .map((e) => e.slice(2))
      .filter((id) => !taken.has(id) || enqueued.has(id))
      .map((id) =>
        this.queue.removeWaiting("build", id).catch((error: unknown) => {
          this.logger.debug({ buildId: id, err: error }, "superseded build not dequeued");
          return false;
        }),
      );
    await Promise.all(removals);
  }

  private lockKey(): string {
    return `${this.keys.list}:mover`;
  }
}

const TRIM = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[2], ARGV[2], -1)
return 1`;
