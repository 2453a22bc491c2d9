import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { RateDecision, RateLimiter } from "../../ports/rate-limiter.js";

/**
 * Token buckets in Redis, one round trip per request: a Lua script refills the bucket from the time
 * elapsed (Redis's own clock, so every process agrees), takes a token if there is one, and answers
 * how long until the next token otherwise. A bucket left alone expires once it would be full again.
 */
export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix = "slipway:ratelimit",
  ) {}

  async take(key: string, perMinute: number): Promise<RateDecision> {
    if (perMinute <= 0) return { allowed: true };
    const [allowed, waitMs] = await this.run(`${this.keyPrefix}:${key}`, perMinute);
    return allowed === 1 ? { allowed: true } : { allowed: false, retryAfterMs: Math.max(1, waitMs) };
  }

  /** EVALSHA keeps the script off the wire; a Redis that lost its script cache gets it once more. */
  private async run(key: string, perMinute: number): Promise<[number, number]> {
    try {
      return (await this.redis.evalsha(TAKE_SHA, 1, key, perMinute)) as [number, number];
    } catch (error) {
      if (!String((error as Error).message).startsWith("NOSCRIPT")) throw error;
      return (await this.redis.eval(TAKE, 1, key, perMinute)) as [number, number];
    }
  }
}

const TAKE = `
local cap = tonumber(ARGV[1])
local per_ms = cap / 60000
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 't', 'v')
local tokens = cap
if b[1] and b[2] then
  tokens = math.min(cap, tonumber(b[2]) + math.max(0, now - tonumber(b[1])) * per_ms)
end
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 't', now, 'v', tostring(tokens))
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / per_ms) + 1000)
return {allowed, wait}`;
const TAKE_SHA = createHash("sha1").update(TAKE).digest("hex");
