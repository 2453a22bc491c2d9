import type { Redis } from "ioredis";
import type { JobBatch, JobRunDecision, NotifyStore, OutgoingWebhook } from "../../ports/notify.js";
import type { SecretBox } from "../../ports/secret-box.js";

const P = "slipway:notify:";
const recipientsKey = (tool: string) => `${P}recipients:${tool}`;
const webhookKey = (tool: string) => `${P}webhook:${tool}`;
const deliveredKey = (key: string) => `${P}delivered:${key}`;
const decisionKey = (eventId: string) => `${P}jobrun:${eventId}`;
const jobKey = (tool: string, job: string) => `${P}job:${tool}:${job}`;
const claimKey = (tool: string, job: string) => `${P}claim:${tool}:${job}`;
const DUE = `${P}due`;
/** How long delivery marks and decisions are kept: longer than any redelivery of their event. */
const MARK_MS = 7 * 24 * 3600 * 1000;

// One run counted once (the decision is kept per event id), atomically with the batch it goes into.
const RECORD = `
local d = redis.call('GET', KEYS[1])
if d then return d end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[2], 'last_mail_ms') or '-1')
local pending = tonumber(redis.call('HGET', KEYS[2], 'failed') or '0') + tonumber(redis.call('HGET', KEYS[2], 'succeeded') or '0')
if pending == 0 and (last < 0 or now - last >= window) then
  redis.call('HSET', KEYS[2], 'last_mail_ms', ARGV[1])
  d = 'send'
else
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  redis.call('HSET', KEYS[2], 'last_status', ARGV[4], 'last_reason', ARGV[5], 'last_run_id', ARGV[6])
  redis.call('ZADD', KEYS[3], last + window, ARGV[7])
  d = 'batched'
end
redis.call('SET', KEYS[1], d, 'PX', ARGV[8])
redis.call('PEXPIRE', KEYS[2], 3 * window)
return d`;

// Takes the mailed runs out of the batch; runs counted since stay for the next window.
const SETTLE = `
local f = redis.call('HINCRBY', KEYS[1], 'failed', 0 - tonumber(ARGV[1]))
local s = redis.call('HINCRBY', KEYS[1], 'succeeded', 0 - tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'last_mail_ms', ARGV[3])
if f + s > 0 then redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[5])
else redis.call('ZREM', KEYS[2], ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], 3 * tonumber(ARGV[4]))
redis.call('DEL', KEYS[3])
return 1`;

/**
 * Notification settings and bookkeeping on Redis. An outgoing webhook's secret is sealed with the
 * home's key (bound to the tool), as env var values are: the notifier needs it back to sign.
 */
export class RedisNotifyStore implements NotifyStore {
  constructor(
    private readonly redis: Redis,
    private readonly box: SecretBox,
  ) {}

  async recipients(tool: string): Promise<string[]> {
    return (await this.redis.smembers(recipientsKey(tool))).sort();
  }

  async addRecipient(tool: string, address: string): Promise<boolean> {
    return (await this.redis.sadd(recipientsKey(tool), address)) === 1;
  }

  async removeRecipient(tool: string, address: string): Promise<boolean> {
    return (await this.redis.srem(recipientsKey(tool), address)) === 1;
  }

  async webhook(tool: string): Promise<OutgoingWebhook | undefined> {
    const raw = await this.redis.hgetall(webhookKey(tool));
    if (!raw.url || !raw.secret_sealed) return undefined;
    return { url: raw.url, secret: this.box.open(raw.secret_sealed, `notify-webhook:${tool}`) };
  }

  async setWebhook(tool: string, hook: OutgoingWebhook): Promise<void> {
    await this.redis.hset(webhookKey(tool), {
      url: hook.url,
      secret_sealed: this.box.seal(hook.secret, `notify-webhook:${tool}`),
    });
  }

  async deleteWebhook(tool: string): Promise<boolean> {
    return (await this.redis.del(webhookKey(tool))) === 1;
  }

  async delivered(key: string): Promise<boolean> {
    return (await this.redis.exists(deliveredKey(key))) === 1;
  }

  async markDelivered(key: string): Promise<void> {
    await this.redis.set(deliveredKey(key), "1", "PX", MARK_MS);
  }

  async recordJobRun(
    event: { id: string; run_id: string; tool: string; job: string; status: string; reason: string | null },
    nowMs: number,
    windowMs: number,
  ): Promise<JobRunDecision> {
    const failed = event.status !== "succeeded";
    return (await this.redis.eval(
      RECORD,
      3,
      decisionKey(event.id),
      jobKey(event.tool, event.job),
      DUE,
      nowMs,
      windowMs,
      failed ? "failed" : "succeeded",
      event.status,
      event.reason ?? "",
      event.run_id,
      JSON.stringify([event.tool, event.job]),
      MARK_MS,
    )) as JobRunDecision;
  }

  async dueBatches(nowMs: number, limit: number): Promise<JobBatch[]> {
    const members = await this.redis.zrangebyscore(DUE, "-inf", nowMs, "LIMIT", 0, limit);
    const batches: JobBatch[] = [];
    for (const member of members) {
      const [tool, job] = JSON.parse(member) as [string, string];
      const h = await this.redis.hgetall(jobKey(tool, job));
      const failed = Number(h.failed ?? 0);
      const succeeded = Number(h.succeeded ?? 0);
      if (failed + succeeded <= 0) {
        await this.redis.zrem(DUE, member);
        continue;
      }
      batches.push({
        tool,
        job,
        failed,
        succeeded,
        last_status: h.last_status ?? "failed",
        last_reason: h.last_reason ? h.last_reason : null,
        last_run_id: h.last_run_id ?? "",
        since_ms: Number(h.last_mail_ms ?? 0),
      });
    }
    return batches;
  }

  async settleBatch(batch: JobBatch, nowMs: number, windowMs: number): Promise<void> {
    await this.redis.eval(
      SETTLE,
      3,
      jobKey(batch.tool, batch.job),
      DUE,
      claimKey(batch.tool, batch.job),
      batch.failed,
      batch.succeeded,
      nowMs,
      windowMs,
      JSON.stringify([batch.tool, batch.job]),
    );
  }

  async claimBatch(tool: string, job: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(claimKey(tool, job), "1", "PX", ttlMs, "NX")) === "OK";
  }
}
