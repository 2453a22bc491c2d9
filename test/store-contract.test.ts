import { afterAll, beforeAll } from "vitest";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import { stateStoreContract } from "./contracts/state-store.js";
import { startRedis } from "./helpers/redis.js";

// The contract the in-memory fake is held to (test/unit/memory-store.test.ts), on the real RedisStore.
let redis: Awaited<ReturnType<typeof startRedis>>;
let store: RedisStore;

beforeAll(async () => {
  redis = await startRedis();
  store = RedisStore.create(redis.url);
});

afterAll(async () => {
  await store?.close();
  await redis?.stop();
});

stateStoreContract("RedisStore", () => store);
