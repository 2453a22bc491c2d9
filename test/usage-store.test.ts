import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisUsageHistory } from "../services/adapters/store/redis-usage.js";
import { memoryLogger } from "../services/platform/logger.js";
import { UsageSampler } from "../services/domain/usage/sampler.js";
import { startRedis } from "./helpers/redis.js";

let redisServer: Awaited<ReturnType<typeof startRedis>>;
let redis: Redis;
let history: RedisUsageHistory;

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  history = new RedisUsageHistory(redis);
});

afterAll(async () => {
  await redis?.quit();
  await redisServer?.stop();
});

const sample = (i: number) => ({
  at: new Date(Date.UTC(2026, 11, 7, 0, i)).toISOString(),
  kinds: { web: { cpuPercent: i, memoryBytes: i * 1024 } },
});

describe("RedisUsageHistory", () => {
  it("keeps a tool's newest samples, oldest first, and lets them expire after the newest", async () => {
    for (let i = 0; i < 5; i++) await history.record("t1", sample(i), { keep: 3, ttlS: 240 });
    expect((await history.recent("t1")).map((s) => s.kinds.web?.cpuPercent)).toEqual([2, 3, 4]);
    expect(await redis.llen("slipway:usage:t1")).toBe(3);
    const ttl = await redis.ttl("slipway:usage:t1");
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(240);
    expect(await history.recent("t2")).toEqual([]);
  });

  it("a sampler tick writes one sample per tool that has containers", async () => {
    const sampler = new UsageSampler({
      source: {
        read: () =>
          Promise.resolve([
            { tool: "s1", kind: "web" as const, cpuPercent: 1.25, memoryBytes: 1000 },
            { tool: "s1", kind: "web" as const, cpuPercent: 0.75, memoryBytes: 3000 },
          ]),
      },
      history,
      logger: memoryLogger(),
      options: { intervalMs: 60_000, keep: 60 },
    });
    await sampler.tick();
    const [got] = await history.recent("s1");
    expect(got?.kinds).toEqual({ web: { cpuPercent: 2, memoryBytes: 4000 } });
    // 61 minutes: an hour of samples plus one interval, then a tool without containers is forgotten.
    const ttl = await redis.ttl("slipway:usage:s1");
    expect(ttl).toBeGreaterThan(60 * 60);
    expect(ttl).toBeLessThanOrEqual(61 * 60);
  });
});
