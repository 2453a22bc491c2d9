import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { RedisServer } from "../../services/adapters/redis/server.js";

/** A real redis-server on a random port in a temp dir, removed by `stop()`. */
export async function startRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-redis-"));
  const server = await RedisServer.start(dir, 0);
  return {
    url: server.url,
    stop: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
