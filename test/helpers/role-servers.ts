import path from "node:path";
import type { Build } from "../../services/domain/builds/build.js";
import { RedisStore } from "../../services/adapters/store/redis-store.js";
import { freePort } from "../../services/platform/net.js";
import { waitFor } from "./apps.js";
import type { LocalServerOptions } from "./local-server.js";
import { startRedis } from "./redis.js";
import { startRegistry } from "./registry.js";

/**
 * What separate role servers share, as a split deployment runs them: one Redis, one registry, one home
 * (encryption key, builder secret) and one public URL. `options(role)` starts a role with
 * `startLocalServer`; `store` reads the records the roles write.
 */
export async function roleServers(tmp: string, env: Record<string, string> = {}) {
  const redis = await startRedis();
  const registry = await startRegistry();
  const store = RedisStore.create(redis.url);
  const shared = {
    REDIS_URL: redis.url,
    SLIPWAY_REGISTRY_URL: registry.url,
    SLIPWAY_REGISTRY_USERNAME: registry.username,
    SLIPWAY_REGISTRY_PASSWORD: registry.password,
    SLIPWAY_PORT: String(await freePort()),
    SLIPWAY_HEALTH_TIMEOUT_S: "30",
    ...env,
  };
  const home = path.join(tmp, "slipway");
  return {
    store,
    options: (role: "api" | "builder" | "deployer"): LocalServerOptions => ({
      home,
      env: shared,
      role,
      ready: role === "builder",
    }),
    /** The build once it ended, whichever way (read from the store: no API process needed). */
    buildEnded: (id: string): Promise<Build> =>
      waitFor(
        `build ${id}`,
        async () => {
          const b = await store.getBuild(id);
          return b && ["success", "failure", "cancelled", "superseded"].includes(b.status) ? b : undefined;
        },
        600_000,
        500,
      ),
    async stop(): Promise<void> {
      await store.close();
      await registry.stop();
      await redis.stop();
    },
  };
}
