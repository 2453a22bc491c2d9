import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { BucketTake, RateDecision, RateLimiter } from "../../ports/rate-limiter.js";

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

  /** Taken by the store's intake script (TAKE_TOKEN_LUA there): the store must use the same Redis. */
  bucket(key: string, perMinute: number): BucketTake {
    return { key: `${this.keyPrefix}:${key}`, perMinute };
  }

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

/**
 * A Lua function taking one token from the bucket at `key` (capacity and refill `cap` per minute):
 * answers allowed (1 or 0) and the milliseconds until the next token. Shared with the push intake
 * script (RedisStore.intakePush), which takes a webhook's tokens in the same round trip as the queueing.
 */
export const TAKE_TOKEN_LUA = `
local function take_token(key, cap)
  local per_ms = cap / 60000
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local b = redis.call('HMGET', key, 't', 'v')
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
  redis.call('HSET', key, 't', now, 'v', tostring(tokens))
  redis.call('PEXPIRE', key, math.ceil((cap - tokens) / per_ms) + 1000)
  return allowed, wait
end
`;

const TAKE = `${TAKE_TOKEN_LUA}
local allowed, wait = take_token(KEYS[1], tonumber(ARGV[1]))
return {allowed, wait}`;
const TAKE_SHA = createHash("sha1").update(TAKE).digest("hex");
