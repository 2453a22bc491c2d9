import { Redis } from "ioredis";
import type { Build } from "../../domain/builds/build.js";
import type { Release } from "../../domain/releases/release.js";
import type { Tool } from "../../domain/tools/tool.js";
import { ConflictError, NotFoundError } from "../../platform/errors.js";
import type { Route, SecretKind, StateStore } from "../../ports/store.js";
import { publishStateEvent } from "./redis-state-events.js";

const P = "slipway:";
const DELIVERY_TTL_S = 24 * 3600;
const ROUTES_CHANNEL = `${P}routes`;
const TX_CONNECTIONS = 8;

/**
 * StateStore on Redis. Records are JSON strings; per-tool indexes are sorted sets scored by creation
 * time so listings are newest-first without scanning.
 */
export class RedisStore implements StateStore {
  private subscriber: Redis | undefined;
  /**
   * WATCH is per connection, so read-modify-write updates run one at a time per connection. A small
   * pool, chosen by key, keeps updates of one record in order while different records proceed at once.
   */
  private readonly tx: { conn: Redis; queue: Promise<unknown> }[];

  private constructor(private readonly redis: Redis) {
    this.tx = Array.from({ length: TX_CONNECTIONS }, () => ({
      conn: redis.duplicate(),
      queue: Promise.resolve(),
    }));
  }

  static create(url: string): RedisStore {
    return new RedisStore(new Redis(url, { maxRetriesPerRequest: 3 }));
  }

  async createTool(tool: Tool): Promise<void> {
    const ok = await this.redis.set(`${P}tool:${tool.name}`, JSON.stringify(tool), "NX");
    if (ok === null) throw new ConflictError(`tool "${tool.name}" already exists`);
    await this.redis
      .multi()
      .zadd(`${P}tools`, Date.parse(tool.created_at), tool.name)
      .set(`${P}secret:${tool.token_hash}`, `token:${tool.name}`)
      .set(`${P}secret:${tool.webhook_secret_hash}`, `webhook:${tool.name}`)
      .set(`${P}secret:${tool.redeploy_token_hash}`, `redeploy:${tool.name}`)
      .exec();
  }

  async toolBySecretHash(hash: string): Promise<{ tool: string; kind: SecretKind } | undefined> {
    const value = await this.redis.get(`${P}secret:${hash}`);
    if (value === null) return undefined;
    const [kind, tool] = value.split(":") as [SecretKind, string];
    return { tool, kind };
  }

  async replaceSecretHash(name: string, kind: SecretKind, hash: string): Promise<Tool> {
    const field = SECRET_FIELDS[kind];
    const before = await this.getTool(name);
    if (!before) throw new NotFoundError(`tool "${name}" does not exist`);
    const tool = await this.patch<Tool>(`${P}tool:${name}`, { [field]: hash }, `tool "${name}"`);
    // The new hash is indexed before the old one is dropped: the record already rejects the old secret.
    await this.redis
      .multi()
      .set(`${P}secret:${hash}`, `${kind}:${name}`)
      .del(`${P}secret:${before[field]}`)
      .exec();
    return tool;
  }

  async getTool(name: string): Promise<Tool | undefined> {
    return parse<Tool>(await this.redis.get(`${P}tool:${name}`));
  }

  async listTools(): Promise<Tool[]> {
    const names = await this.redis.zrange(`${P}tools`, 0, -1);
    return this.many<Tool>(names.map((n) => `${P}tool:${n}`));
  }

  async updateTool(name: string, patch: Partial<Tool>): Promise<Tool> {
    return this.patch<Tool>(`${P}tool:${name}`, patch, `tool "${name}"`);
  }

  async createBuild(build: Build): Promise<void> {
    await this.redis
      .multi()
      .set(`${P}build:${build.id}`, JSON.stringify(build))
      .zadd(`${P}tool:${build.tool}:builds`, Date.parse(build.created_at), build.id)
      .exec();
    await publishStateEvent(this.redis, {
      kind: "build",
      id: build.id,
      tool: build.tool,
      status: build.status,
      reason: build.reason,
    });
  }

  async getBuild(id: string): Promise<Build | undefined> {
    return parse<Build>(await this.redis.get(`${P}build:${id}`));
  }

  async updateBuild(id: string, patch: Partial<Build>): Promise<Build> {
    const next = await this.patch<Build>(`${P}build:${id}`, patch, `build ${id}`);
    if (patch.status !== undefined) {
      const { tool, status, reason } = next;
      await publishStateEvent(this.redis, { kind: "build", id, tool, status, reason });
    }
    return next;
  }

  async listBuilds(tool: string, limit: number): Promise<Build[]> {
    const ids = await this.redis.zrevrange(`${P}tool:${tool}:builds`, 0, limit - 1);
    return this.many<Build>(ids.map((id) => `${P}build:${id}`));
  }

  async claimCommit(
    tool: string,
    component: string,
    commit: string,
    buildId: string,
  ): Promise<string | undefined> {
    const key = `${P}commit:${tool}:${component}:${commit}`;
    const ok = await this.redis.set(key, buildId, "NX");
    return ok === null ? ((await this.redis.get(key)) ?? undefined) : undefined;
  }

  async releaseCommit(tool: string, component: string, commit: string): Promise<void> {
    await this.redis.del(`${P}commit:${tool}:${component}:${commit}`);
  }

  async swapNewestBuild(tool: string, component: string, buildId: string): Promise<string | undefined> {
    const previous = await this.redis.set(`${P}newest:${tool}:${component}`, buildId, "GET");
    return previous ?? undefined;
  }

  async rememberDelivery(tool: string, key: string, answer: string): Promise<string | undefined> {
    const k = `${P}delivery:${tool}:${key}`;
    const ok = await this.redis.set(k, answer, "EX", DELIVERY_TTL_S, "NX");
    return ok === null ? ((await this.redis.get(k)) ?? undefined) : undefined;
  }

  async answerDelivery(tool: string, key: string, answer: string): Promise<void> {
    await this.redis.set(`${P}delivery:${tool}:${key}`, answer, "KEEPTTL");
  }

  async createRelease(release: Release): Promise<void> {
    await this.redis
      .multi()
      .set(`${P}release:${release.id}`, JSON.stringify(release))
      .zadd(`${P}tool:${release.tool}:releases`, Date.parse(release.created_at), release.id)
      .exec();
  }

  async getRelease(id: string): Promise<Release | undefined> {
    return parse<Release>(await this.redis.get(`${P}release:${id}`));
  }

  async updateRelease(id: string, patch: Partial<Release>): Promise<Release> {
    const next = await this.patch<Release>(`${P}release:${id}`, patch, `release ${id}`);
    if (patch.status !== undefined) {
      const { tool, build_id, status, reason } = next;
      await publishStateEvent(this.redis, { kind: "release", id, tool, build_id, status, reason });
    }
    return next;
  }

  async listReleases(tool: string, limit: number): Promise<Release[]> {
    const ids = await this.redis.zrevrange(`${P}tool:${tool}:releases`, 0, limit - 1);
    return this.many<Release>(ids.map((id) => `${P}release:${id}`));
  }

  async setRoute(route: Route): Promise<void> {
    await this.redis.set(`${P}route:${route.tool}`, JSON.stringify(route));
    await this.redis.publish(ROUTES_CHANNEL, route.tool);
  }

  async deleteRoute(tool: string): Promise<void> {
    await this.redis.del(`${P}route:${tool}`);
    await this.redis.publish(ROUTES_CHANNEL, tool);
  }

  async getRoute(tool: string): Promise<Route | undefined> {
    return parse<Route>(await this.redis.get(`${P}route:${tool}`));
  }

  async watchRoutes(onChange: (tool: string) => void): Promise<void> {
    this.subscriber ??= this.redis.duplicate();
    this.subscriber.on("message", (channel: string, tool: string) => {
      if (channel === ROUTES_CHANNEL) onChange(tool);
    });
    await this.subscriber.subscribe(ROUTES_CHANNEL);
  }

  async close(): Promise<void> {
    await Promise.all([this.redis.quit(), ...this.tx.map((t) => t.conn.quit()), this.subscriber?.quit()]);
  }

  /** Read-modify-write under WATCH so concurrent updates (a cancel during a build) are not lost. */
  private patch<T extends object>(key: string, patch: Partial<T>, what: string): Promise<T> {
    const slot = this.tx[hashOf(key) % this.tx.length]!;
    const tx = slot.conn;
    const attempt = async (): Promise<T> => {
      for (let i = 0; i < 20; i++) {
        await tx.watch(key);
        const current = parse<T>(await tx.get(key));
        if (!current) {
          await tx.unwatch();
          throw new NotFoundError(`${what} does not exist`);
        }
        const next = { ...current, ...patch };
        const done = await tx.multi().set(key, JSON.stringify(next)).exec();
        if (done !== null) return next;
      }
      throw new ConflictError(`${what} is being changed concurrently; try again`);
    };
    const result = slot.queue.then(attempt, attempt);
    slot.queue = result.catch(() => undefined);
    return result;
  }

  private async many<T>(keys: string[]): Promise<T[]> {
    if (keys.length === 0) return [];
    const values = await this.redis.mget(...keys);
    return values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as T]));
  }
}

const SECRET_FIELDS = {
  token: "token_hash",
  webhook: "webhook_secret_hash",
  redeploy: "redeploy_token_hash",
} as const satisfies Record<SecretKind, keyof Tool>;

function hashOf(key: string): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return h;
}

function parse<T>(value: string | null): T | undefined {
  return value === null ? undefined : (JSON.parse(value) as T);
}
