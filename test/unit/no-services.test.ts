import { describe, expect, it } from "vitest";
import { startRedis } from "../helpers/redis.js";

describe("the unit suite", () => {
  it("refuses to start redis-server, with what to do instead", async () => {
    await expect(startRedis()).rejects.toThrow(
      /^unit tests start no services, but this test started redis-server: use the fakes in test\/fakes/,
    );
  });
});
