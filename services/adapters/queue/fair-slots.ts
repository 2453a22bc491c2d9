import type { Redis } from "ioredis";

/**
 * Fair scheduling state for one queue, in Redis next to BullMQ's own keys (so every builder process
 * shares it):
 * - `waiting`: a set per group of jobs queued but not started; its size at enqueue time is the job's
 *   BullMQ priority, so a group's n-th waiting job sorts behind every other group's first ones.
 * - `slot:<i>`: one lease per running job of a group (SET NX PX, renewed while the job runs). A process
 *   that dies holding one frees it when the lease expires; nothing has to clean up after it.
 * - `parked`: jobs that found their group at its cap and went back to BullMQ's delayed set; the job
 *   that frees a slot promotes the first of them, so a parked job waits for a slot, not for a timer.
 */
export class FairSlots {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly leaseMs = 30_000,
  ) {}

  /** Records a queued job and answers its priority: 1 + how many of its group wait before it. */
  async queued(group: string, jobId: string): Promise<number> {
    const result = await this.redis
      .multi()
      .sadd(this.key(group, "waiting"), jobId)
      .scard(this.key(group, "waiting"))
      .exec();
    const size = Number(result?.[1]?.[1] ?? 1);
    // BullMQ's highest priority number is 2^21; a backlog that long is unordered among itself.
    return Math.min(Math.max(size, 1), 2 ** 21);
  }

  /** The job will not start (removed or superseded before it ran). */
  async forget(group: string, jobId: string): Promise<void> {
    await this.redis
      .multi()
      .srem(this.key(group, "waiting"), jobId)
      .zrem(this.key(group, "parked"), jobId)
      .exec();
  }

  /** Takes one of the group's `cap` slots for this job, or answers undefined when all are held. */
  async acquire(group: string, jobId: string, cap: number): Promise<Lease | undefined> {
    const holder = `${jobId}:${Math.random().toString(36).slice(2)}`;
    const keys = this.slotKeys(group, cap);
    const slot = (await this.redis.eval(ACQUIRE, keys.length, ...keys, holder, this.leaseMs)) as number;
    if (slot === 0) return undefined;
    const key = keys[slot - 1]!;
    await this.redis
      .multi()
      .srem(this.key(group, "waiting"), jobId)
      .zrem(this.key(group, "parked"), jobId)
      .exec();
    return new Lease(this.redis, key, holder, this.leaseMs);
  }

  /** Remembers a job sent back because its group is full; the lowest priority is promoted first. */
  async park(group: string, jobId: string, priority: number): Promise<void> {
    await this.redis.zadd(this.key(group, "parked"), priority, jobId);
  }

  /** Pops the next parked job of the group, if any. */
  async nextParked(group: string): Promise<string | undefined> {
    const popped = await this.redis.zpopmin(this.key(group, "parked"));
    return popped[0];
  }

  /** True when at least one slot of the group is free right now. */
  async hasFree(group: string, cap: number): Promise<boolean> {
    const held = await this.redis.exists(...this.slotKeys(group, cap));
    return held < cap;
  }

  private slotKeys(group: string, cap: number): string[] {
    if (!Number.isInteger(cap) || cap < 1)
      throw new Error(`per-group cap must be a positive integer, not ${cap}`);
    return Array.from({ length: cap }, (_, i) => this.key(group, `slot:${i}`));
  }

  private key(group: string, part: string): string {
    // Group names are tool names today; encoding keeps any other string from forging a key.
    return `${this.keyPrefix}:fair:${encodeURIComponent(group)}:${part}`;
  }
}

/** A held slot. Renewed in the background until released; release is idempotent. */
export class Lease {
  private readonly timer: NodeJS.Timeout;
  private released = false;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly holder: string,
    leaseMs: number,
  ) {
    this.timer = setInterval(
      () => {
        // A failed renewal is not fatal: at worst the group may run one job over its cap for a while.
        this.redis.eval(RENEW, 1, this.key, this.holder, leaseMs).catch(() => undefined);
      },
      Math.max(1000, Math.floor(leaseMs / 3)),
    );
    this.timer.unref();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    await this.redis.eval(RELEASE, 1, this.key, this.holder);
  }
}

const ACQUIRE = `
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then return i end
end
return 0`;

const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;
