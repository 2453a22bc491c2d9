import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  KEEP_LINES,
  KEEP_RELEASES,
  RedisProcessLogs,
} from "../services/adapters/store/redis-process-logs.js";
import { startRedis } from "./helpers/redis.js";

let redisServer: Awaited<ReturnType<typeof startRedis>>;
let redis: Redis;
let logs: RedisProcessLogs;

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  logs = new RedisProcessLogs(redis);
});

afterAll(async () => {
  await redis?.quit();
  await redisServer?.stop();
});

describe("RedisProcessLogs", () => {
  it("keeps the last lines of a release, bounded", async () => {
    const lines = Array.from({ length: KEEP_LINES + 500 }, (_, i) => `line ${i}`);
    for (let i = 0; i < lines.length; i += 200) await logs.append("t1", "r1", lines.slice(i, i + 200));
    const kept = await logs.read("t1", "r1", KEEP_LINES);
    expect(kept).toHaveLength(KEEP_LINES);
    expect(kept.at(-1)?.line).toBe(`line ${lines.length - 1}`);
    expect(kept[0]?.line).toBe(`line ${lines.length - KEEP_LINES}`);
    // Trimmed in Redis too (MAXLEN ~ trims whole nodes: a little over the bound, never the whole history).
    expect(await redis.xlen("slipway:plog:t1:web:r1")).toBeLessThan(KEEP_LINES + 200);
    expect((await logs.read("t1", "r1", 3)).map((l) => l.line)).toEqual([
      `line ${lines.length - 3}`,
      `line ${lines.length - 2}`,
      `line ${lines.length - 1}`,
    ]);
  });

  it("keeps the output of the last releases of a tool only, newest first", async () => {
    for (let i = 0; i < KEEP_RELEASES + 2; i++) {
      await logs.append("t2", `rel${i}`, [`hello from ${i}`]);
      await new Promise((r) => setTimeout(r, 5));
    }
    const expected = Array.from({ length: KEEP_RELEASES }, (_, i) => `rel${KEEP_RELEASES + 1 - i}`);
    expect(await logs.releases("t2")).toEqual(expected);
    expect(await logs.read("t2", "rel0", 10)).toEqual([]);
    expect((await logs.read("t2", "rel6", 10)).map((l) => l.line)).toEqual(["hello from 6"]);
    expect(await logs.lastAppendAt("t2", "rel6")).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it("follows lines appended after the cursor until aborted", async () => {
    await logs.append("t3", "r", ["before"]);
    const controller = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const l of logs.follow("t3", "r", "$", controller.signal)) {
        seen.push(l.line);
        if (seen.length === 2) controller.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    await logs.append("t3", "r", ["after 1", "after 2"]);
    await done;
    expect(seen).toEqual(["after 1", "after 2"]);
  });

  it("remembers a stopped webservice until it is cleared", async () => {
    expect(await logs.getStopped("t4")).toBeUndefined();
    await logs.setStopped("t4", { release_id: "r", at: "2026-12-02T00:00:00.000Z", actor: "admin" });
    expect(await logs.getStopped("t4")).toEqual({
      release_id: "r",
      at: "2026-12-02T00:00:00.000Z",
      actor: "admin",
    });
    await logs.clearStopped("t4");
    expect(await logs.getStopped("t4")).toBeUndefined();
  });
});
