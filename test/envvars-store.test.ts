import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis } from "./helpers/redis.js";
import { CryptoBox } from "../services/platform/crypto-box.js";
import { RedisEnvVars, envVarsKey } from "../services/adapters/store/redis-envvars.js";

const limits = { maxCount: 3, maxTotalBytes: 100 };
let redisServer: Awaited<ReturnType<typeof startRedis>>;
let redis: Redis;
let vars: RedisEnvVars;

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
  vars = new RedisEnvVars(redis, CryptoBox.fromKey(Buffer.alloc(32, 7)));
});

afterAll(async () => {
  await redis?.quit();
  await redisServer?.stop();
});

describe("RedisEnvVars", () => {
  it("stores values encrypted and reads them back per tool", async () => {
    expect(await vars.set("t1", "GREETING", "hello secret", limits)).toBe("created");
    expect(await vars.set("t1", "GREETING", "hello again", limits)).toBe("updated");
    expect(await vars.get("t1", "GREETING")).toBe("hello again");
    expect(await vars.get("t2", "GREETING")).toBeUndefined();
    const raw = JSON.stringify(await redis.hgetall(envVarsKey("t1")));
    expect(raw).not.toContain("hello");
    expect(raw).toContain("v1:");
  });

  it("does not open a value copied under another tool or name", async () => {
    const sealed = await redis.hget(envVarsKey("t1"), "GREETING");
    await redis.hset(envVarsKey("t3"), "GREETING", sealed!);
    await expect(vars.get("t3", "GREETING")).rejects.toThrow(/context mismatch/);
  });

  it("enforces the count and total size limits atomically, writing nothing when over", async () => {
    await vars.set("t4", "A", "1", limits);
    await vars.set("t4", "B", "2", limits);
    const results = await Promise.all(["C", "D", "E"].map((n) => vars.set("t4", n, "3", limits)));
    expect(results.filter((r) => r === "created")).toHaveLength(1);
    expect(results.filter((r) => r === "too_many")).toHaveLength(2);
    expect(await vars.set("t4", "A", "x".repeat(100), limits)).toBe("too_large");
    expect(await vars.get("t4", "A")).toBe("1");
    // Replacing a value counts its new size only.
    expect(await vars.set("t4", "A", "x".repeat(90), limits)).toBe("updated");
  });

  it("lists sorted by name and deletes", async () => {
    expect((await vars.list("t4")).map((v) => v.name)).toEqual(["A", "B", expect.any(String)]);
    expect(await vars.delete("t4", "B")).toBe(true);
    expect(await vars.delete("t4", "B")).toBe(false);
    expect((await vars.list("t4")).map((v) => v.name)).not.toContain("B");
    expect(await vars.set("t4", "Z", "1", limits)).toBe("created");
  });
});
