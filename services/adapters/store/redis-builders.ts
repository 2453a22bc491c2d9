import type { Redis } from "ioredis";
import { newId } from "../../platform/ids.js";
import type { BuilderRegistry } from "../../ports/builders.js";

const P = "slipway:builder";

/**
 * Builders and their builds in Redis: `slipway:builders` (every builder not yet forgotten),
 * `slipway:builder:<id>:alive` (the heartbeat, renewed every third of its lifetime) and
 * `slipway:builder:<id>:builds` (what it took and has not finished). The build set has no expiry, so
 * it survives the builder that wrote it; the heartbeat does not, which is how its death shows.
 */
export class RedisBuilderRegistry implements BuilderRegistry {
  readonly id = newId();
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly redis: Redis,
    private readonly heartbeatMs: number,
  ) {}

  /** Registers this process as a builder and keeps its heartbeat until `close`. */
  static async start(redis: Redis, heartbeatMs = 30_000): Promise<RedisBuilderRegistry> {
    const registry = new RedisBuilderRegistry(redis, heartbeatMs);
    await registry.beat();
    await redis.sadd(`${P}s`, registry.id);
    registry.timer = setInterval(
      // A missed beat is not fatal: two more come before the heartbeat expires.
      () => void registry.beat().catch(() => undefined),
      Math.max(1000, Math.floor(heartbeatMs / 3)),
    );
    registry.timer.unref();
    return registry;
  }

  /** The builders whose heartbeat is current (the admin dashboard's health). */
  static async living(redis: Redis): Promise<string[]> {
    const ids = await redis.smembers(`${P}s`);
    const alive = await Promise.all(ids.map(async (id) => (await redis.exists(`${P}:${id}:alive`)) === 1));
    return ids.filter((_id, i) => alive[i]);
  }

  async took(buildId: string): Promise<void> {
    await this.redis.sadd(`${P}:${this.id}:builds`, buildId);
  }

  async finished(buildId: string): Promise<void> {
    await this.redis.srem(`${P}:${this.id}:builds`, buildId);
  }

  async alive(builderId: string): Promise<boolean> {
    return (await this.redis.exists(`${P}:${builderId}:alive`)) === 1;
  }

  async orphans(): Promise<{ builder: string; builds: string[] }[]> {
    const out: { builder: string; builds: string[] }[] = [];
    for (const builder of await this.redis.smembers(`${P}s`)) {
      if (builder === this.id || (await this.alive(builder))) continue;
      out.push({ builder, builds: await this.redis.smembers(`${P}:${builder}:builds`) });
    }
    return out;
  }

  async forget(builderId: string): Promise<void> {
    await this.redis.multi().srem(`${P}s`, builderId).del(`${P}:${builderId}:builds`).exec();
  }

  /** Stops the heartbeat; a builder that closed cleanly has ended its builds and is forgotten. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const builds = await this.redis.scard(`${P}:${this.id}:builds`);
    if (builds === 0) await this.forget(this.id);
    await this.redis.del(`${P}:${this.id}:alive`);
  }

  private async beat(): Promise<void> {
    await this.redis.set(`${P}:${this.id}:alive`, String(Date.now()), "PX", this.heartbeatMs);
  }
}
