import type { Redis } from "ioredis";
import type { LogLine } from "../../ports/logs.js";
import type { ProcessLogs, WebserviceMarks, WebserviceStopped } from "../../ports/process-logs.js";

const P = "slipway:plog:";
/** Per release: the last lines kept (MAXLEN ~, so Redis trims whole nodes cheaply). */
export const KEEP_LINES = 2000;
/** Per tool: the releases whose output is kept; older ones are deleted as new ones start writing. */
export const KEEP_RELEASES = 5;
const KEEP_S = 30 * 24 * 3600;

/**
 * Webservice output as one Redis stream per tool and release (like build logs): a batch is one MULTI,
 * followers block on XREAD. A sorted set per tool orders the releases by their first line, so only the
 * last {@link KEEP_RELEASES} are kept.
 */
export class RedisProcessLogs implements ProcessLogs, WebserviceMarks {
  constructor(private readonly redis: Redis) {}

  async append(tool: string, releaseId: string, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const key = streamKey(tool, releaseId);
    const index = indexKey(tool);
    const tx = this.redis.multi();
    for (const line of lines) tx.xadd(key, "MAXLEN", "~", String(KEEP_LINES), "*", "l", line);
    tx.expire(key, KEEP_S)
      .zadd(index, "NX", Date.now(), releaseId)
      .expire(index, KEEP_S)
      .set(`${key}:at`, new Date().toISOString(), "EX", KEEP_S);
    await tx.exec();
    const old = await this.redis.zrange(index, 0, -(KEEP_RELEASES + 1));
    if (old.length > 0) {
      const drop = this.redis.multi().zrem(index, ...old);
      for (const id of old) drop.del(streamKey(tool, id), `${streamKey(tool, id)}:at`);
      await drop.exec();
    }
  }

  async read(tool: string, releaseId: string, tail: number): Promise<LogLine[]> {
    const entries = await this.redis.xrevrange(streamKey(tool, releaseId), "+", "-", "COUNT", tail);
    return entries.reverse().map(([id, fields]) => ({ id, line: fields[1] ?? "" }));
  }

  async *follow(tool: string, releaseId: string, after: string, signal: AbortSignal): AsyncIterable<LogLine> {
    // XREAD BLOCK holds its connection: each follower gets its own.
    const conn = this.redis.duplicate();
    signal.addEventListener("abort", () => conn.disconnect(), { once: true });
    try {
      let last = after;
      if (last === "$") {
        // Pinned now, so nothing appended between two reads is missed.
        const newest = await this.redis.xrevrange(streamKey(tool, releaseId), "+", "-", "COUNT", 1);
        last = newest[0]?.[0] ?? "0-0";
      }
      while (!signal.aborted) {
        const res = await conn
          .xread("COUNT", 500, "BLOCK", 1000, "STREAMS", streamKey(tool, releaseId), last)
          .catch(() => null);
        for (const [id, fields] of res?.[0]?.[1] ?? []) {
          last = id;
          yield { id, line: fields[1] ?? "" };
        }
      }
    } finally {
      conn.disconnect();
    }
  }

  async releases(tool: string): Promise<string[]> {
    return this.redis.zrevrange(indexKey(tool), 0, -1);
  }

  async lastAppendAt(tool: string, releaseId: string): Promise<string | undefined> {
    return (await this.redis.get(`${streamKey(tool, releaseId)}:at`)) ?? undefined;
  }

  async getStopped(tool: string): Promise<WebserviceStopped | undefined> {
    const raw = await this.redis.get(`${P}${tool}:stopped`);
    return raw ? (JSON.parse(raw) as WebserviceStopped) : undefined;
  }

  async setStopped(tool: string, mark: WebserviceStopped): Promise<void> {
    await this.redis.set(`${P}${tool}:stopped`, JSON.stringify(mark));
  }

  async clearStopped(tool: string): Promise<void> {
    await this.redis.del(`${P}${tool}:stopped`);
  }
}

function streamKey(tool: string, releaseId: string): string {
  return `${P}${tool}:web:${releaseId}`;
}

function indexKey(tool: string): string {
  return `${P}${tool}:web`;
}
