import type { Redis } from "ioredis";
import type { BuildLogs, LogLine } from "../../ports/logs.js";

const MAX_LINES = 20_000;
const KEEP_S = 30 * 24 * 3600;

/**
 * Build logs as Redis streams: any process (builder, API) can append and read, a follower blocks on
 * XREAD instead of polling, and MAXLEN keeps one noisy build from filling memory.
 */
export class RedisBuildLogs implements BuildLogs {
  private constructor(
    private readonly redis: Redis,
    private readonly reader: Redis,
  ) {}

  /** `redis` is shared; followers block, so they get a connection of their own per follow. */
  static create(redis: Redis): RedisBuildLogs {
    return new RedisBuildLogs(redis, redis);
  }

  async append(buildId: string, line: string): Promise<void> {
    const key = keyOf(buildId);
    await this.redis
      .multi()
      .xadd(key, "MAXLEN", "~", String(MAX_LINES), "*", "l", line)
      .expire(key, KEEP_S)
      .exec();
  }

  async read(buildId: string, after = "-", limit = MAX_LINES): Promise<LogLine[]> {
    const start = after === "-" ? "-" : `(${after}`;
    const entries = await this.reader.xrange(keyOf(buildId), start, "+", "COUNT", limit);
    return entries.map(([id, fields]) => ({ id, line: fields[1] ?? "" }));
  }

  async *follow(
    buildId: string,
    isDone: () => Promise<boolean>,
    signal: AbortSignal,
  ): AsyncIterable<LogLine> {
    const conn = this.redis.duplicate();
    try {
      let last = "0-0";
      while (!signal.aborted) {
        const res = await conn.xread("COUNT", 500, "BLOCK", 1000, "STREAMS", keyOf(buildId), last);
        const entries = res?.[0]?.[1] ?? [];
        for (const [id, fields] of entries) {
          last = id;
          yield { id, line: fields[1] ?? "" };
        }
        if (entries.length === 0 && (await isDone())) {
          // One last read: lines appended between the XREAD and the status check.
          for (const l of await this.read(buildId, last === "0-0" ? "-" : last)) yield l;
          return;
        }
      }
    } finally {
      conn.disconnect();
    }
  }
}

function keyOf(buildId: string): string {
  return `slipway:log:${buildId}`;
}
