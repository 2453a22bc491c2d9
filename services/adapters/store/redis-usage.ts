import type { Redis } from "ioredis";
import type { UsageHistory, UsageSample } from "../../ports/usage.js";

const P = "slipway:usage:";

/** Each tool's usage samples as one capped Redis list (oldest first), expiring after the newest. */
export class RedisUsageHistory implements UsageHistory {
  constructor(private readonly redis: Redis) {}

  async record(tool: string, sample: UsageSample, limits: { keep: number; ttlS: number }): Promise<void> {
    const key = P + tool;
    await this.redis
      .multi()
      .rpush(key, JSON.stringify(sample))
      .ltrim(key, -limits.keep, -1)
      .expire(key, limits.ttlS)
      .exec();
  }

  async recent(tool: string): Promise<UsageSample[]> {
    return (await this.redis.lrange(P + tool, 0, -1)).map((s) => JSON.parse(s) as UsageSample);
  }
}
