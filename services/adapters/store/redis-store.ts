import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import type { Build } from "../../domain/builds/build.js";
import type { Release } from "../../domain/releases/release.js";
import type { Tool } from "../../domain/tools/tool.js";
import { ConflictError, NotFoundError } from "../../platform/errors.js";
import type { StateEvent } from "../../ports/state-events.js";
import type { PageKey, PushIntake, PushOutcome, Route, SecretKind, StateStore } from "../../ports/store.js";
import { TAKE_TOKEN_LUA } from "../ratelimit/redis-rate-limiter.js";
import { closeConnection, commandConnection, duplicateConnection } from "../redis/connection.js";
import { appendStateEvent, STATE_EVENTS_MAXLEN, STATE_EVENTS_STREAM } from "./redis-state-events.js";

const P = "slipway:";
const DELIVERY_TTL_S = 24 * 3600;
const ROUTES_CHANNEL = `${P}routes`;
const TOOLS_CHANNEL = `${P}tools`;
const TX_CONNECTIONS = 8;

/**
 * Builds a push accepted, on their way to the job queue named by `queuePrefix` (see intakePush and
 * BuildOutbox): `list` holds build ids to enqueue, and `x:<id>` entries for builds superseded after a
 * mover took them; `unmoved` is the set of ids no mover has taken yet; `channel` wakes movers in any
 * process.
 */
export function buildOutboxKeys(queuePrefix = "slipway") {
  const base = `${queuePrefix}:outbox:builds`;
  return {
    list: base,
    unmoved: `${base}:unmoved`,
    channel: base,
    buildKey: (id: string) => `${P}build:${id}`,
  } as const;
}

/**
 * StateStore on Redis. Records are JSON strings; per-tool indexes are sorted sets scored by creation
 * time so listings are newest-first without scanning.
 */
export class RedisStore implements StateStore {
  private subscriber: Redis | undefined;
  private readonly toolWatchers = new Set<(tool: string) => void>();
  /**
   * WATCH is per connection, so read-modify-write updates run one at a time per connection. A small
   * pool, chosen by key, keeps updates of one record in order while different records proceed at once.
   */
  private readonly tx: { conn: Redis; queue: Promise<unknown> }[];

  private constructor(
    private readonly redis: Redis,
    private readonly outbox: ReturnType<typeof buildOutboxKeys>,
  ) {
    this.tx = Array.from({ length: TX_CONNECTIONS }, () => ({
      conn: duplicateConnection(redis),
      queue: Promise.resolve(),
    }));
  }

  /** `queuePrefix` names the job queue the builds go to (JobQueue.create's prefix). */
  static create(url: string, options: { queuePrefix?: string } = {}): RedisStore {
    // Auto-pipelining sends the commands of concurrent requests in one write: a burst of webhooks costs
    // a few socket writes, not one per command.
    return new RedisStore(
      commandConnection(url, { enableAutoPipelining: true }),
      buildOutboxKeys(options.queuePrefix),
    );
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

  async replaceSecretHash(
    name: string,
    kind: SecretKind,
    hash: string,
    also: Partial<Tool> = {},
  ): Promise<Tool> {
    const field = SECRET_FIELDS[kind];
    const before = await this.getTool(name);
    if (!before) throw new NotFoundError(`tool "${name}" does not exist`);
    const tool = await this.patch<Tool>(`${P}tool:${name}`, { ...also, [field]: hash }, `tool "${name}"`);
    // The new hash is indexed before the old one is dropped: the record already rejects the old secret.
    await this.redis
      .multi()
      .set(`${P}secret:${hash}`, `${kind}:${name}`)
      .del(`${P}secret:${before[field]}`)
      .exec();
    await this.toolChanged(name);
    return tool;
  }

  async getTool(name: string): Promise<Tool | undefined> {
    return parse<Tool>(await this.redis.get(`${P}tool:${name}`));
  }

  async listTools(): Promise<Tool[]> {
    const names = await this.redis.zrange(`${P}tools`, 0, -1);
    return this.many<Tool>(names.map((n) => `${P}tool:${n}`));
  }

  async listToolsAfter(after: PageKey | undefined, limit: number): Promise<Tool[]> {
    const names = after
      ? await this.pageAfter(`${P}tools`, after, limit, false)
      : await this.redis.zrange(`${P}tools`, 0, limit - 1);
    return this.many<Tool>(names.map((n) => `${P}tool:${n}`));
  }

  async updateTool(name: string, patch: Partial<Tool>): Promise<Tool> {
    const tool = await this.patch<Tool>(`${P}tool:${name}`, patch, `tool "${name}"`);
    await this.toolChanged(name);
    return tool;
  }

  async watchTools(onChange: (tool: string) => void): Promise<void> {
    this.toolWatchers.add(onChange);
    if (this.toolWatchers.size > 1) return;
    this.subscriber ??= duplicateConnection(this.redis);
    this.subscriber.on("message", (channel: string, tool: string) => {
      if (channel === TOOLS_CHANNEL) for (const w of this.toolWatchers) w(tool);
    });
    await this.subscriber.subscribe(TOOLS_CHANNEL);
  }

  /** Watchers in this process hear of the change before the write returns; others over pub/sub. */
  private async toolChanged(name: string): Promise<void> {
    for (const w of this.toolWatchers) w(name);
    await this.redis.publish(TOOLS_CHANNEL, name).catch(() => undefined);
  }

  async intakePush(intake: PushIntake): Promise<PushOutcome> {
    const { build } = intake;
    const limits = (intake.limits ?? []).filter((l) => l.perMinute > 0);
    const keys = [
      intake.delivery === undefined ? `${P}delivery:-` : `${P}delivery:${build.tool}:${intake.delivery}`,
      `${P}commit:${build.tool}:${build.component}:${build.commit}`,
      `${P}build:${build.id}`,
      `${P}tool:${build.tool}:builds`,
      `${P}newest:${build.tool}:${build.component}`,
      this.outbox.list,
      this.outbox.unmoved,
      STATE_EVENTS_STREAM,
      ...limits.map((l) => l.key),
    ];
    const superseded = JSON.stringify({
      status: "superseded",
      reason: intake.supersededReason,
      finished_at: new Date().toISOString(),
    });
    const [kind, value] = (await this.script(INTAKE, INTAKE_SHA, keys, [
      P,
      intake.delivery === undefined ? "0" : "1",
      DELIVERY_TTL_S,
      intake.force ? "1" : "0",
      build.id,
      JSON.stringify(build),
      Date.parse(build.created_at),
      intake.queuedAnswer,
      intake.duplicateAnswer,
      // Appended to the waiting build's JSON: only the fields that change (see INTAKE).
      `,${superseded.slice(1, -1)}}`,
      STATE_EVENTS_MAXLEN,
      JSON.stringify(buildEvent(build)),
      intake.supersededReason,
      this.outbox.channel,
      ...limits.map((l) => l.perMinute),
    ])) as [string, string];
    if (kind === "limited") {
      // "<bucket's place among the limits taken>:<ms until its next token>"; the filter above kept order.
      const [at, wait] = value.split(":").map(Number) as [number, number];
      return { kind, index: (intake.limits ?? []).indexOf(limits[at]!), retryAfterMs: Math.max(1, wait) };
    }
    if (kind === "redelivery") return { kind, answer: value };
    if (kind === "duplicate") return { kind, build_id: value };
    return { kind: "queued", superseded: value === "" ? undefined : value };
  }

  async startBuild(id: string, patch: Partial<Build>): Promise<Build | undefined> {
    return this.patch<Build>(`${P}build:${id}`, patch, `build ${id}`, {
      guard: (b: Build) => b.status === "pending",
      event: patch.status === undefined ? undefined : buildEvent,
    });
  }

  async takeOverBuild(
    id: string,
    builder: string | undefined,
    patch: Partial<Build>,
  ): Promise<Build | undefined> {
    return this.patch<Build>(`${P}build:${id}`, patch, `build ${id}`, {
      guard: (b: Build) => b.status === "running" && b.builder === builder,
      event: patch.status === undefined ? undefined : buildEvent,
    });
  }

  async createBuild(build: Build): Promise<void> {
    const multi = this.redis
      .multi()
      .set(`${P}build:${build.id}`, JSON.stringify(build))
      .zadd(`${P}tool:${build.tool}:builds`, Date.parse(build.created_at), build.id);
    await appendStateEvent(multi, buildEvent(build)).exec();
  }

  async getBuild(id: string): Promise<Build | undefined> {
    return parse<Build>(await this.redis.get(`${P}build:${id}`));
  }

  async updateBuild(id: string, patch: Partial<Build>): Promise<Build> {
    return this.patch<Build>(`${P}build:${id}`, patch, `build ${id}`, {
      event: patch.status === undefined ? undefined : buildEvent,
    });
  }

  async listBuilds(tool: string, limit: number, before?: PageKey): Promise<Build[]> {
    const key = `${P}tool:${tool}:builds`;
    const ids = before
      ? await this.pageAfter(key, before, limit, true)
      : await this.redis.zrevrange(key, 0, limit - 1);
    return this.many<Build>(ids.map((id) => `${P}build:${id}`));
  }

  async releaseCommit(tool: string, component: string, commit: string): Promise<void> {
    await this.redis.del(`${P}commit:${tool}:${component}:${commit}`);
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
    return this.patch<Release>(`${P}release:${id}`, patch, `release ${id}`, {
      event: patch.status === undefined ? undefined : releaseEvent,
    });
  }

  async listReleases(tool: string, limit: number): Promise<Release[]> {
    const ids = await this.redis.zrevrange(`${P}tool:${tool}:releases`, 0, limit - 1);
    return this.many<Release>(ids.map((id) => `${P}release:${id}`));
  }

  async setRoute(route: Route): Promise<void> {
    await this.redis.set(`${P}route:${route.tool}`, JSON.stringify(route));
    await this.redis.publish(ROUTES_CHANNEL, route.tool);
  }

  async replaceRoute(route: Route, expected: string): Promise<boolean> {
    const key = `${P}route:${route.tool}`;
    const set = await this.script(REPLACE_ROUTE, REPLACE_ROUTE_SHA, [key], [JSON.stringify(route), expected]);
    if (set !== 1) return false;
    await this.redis.publish(ROUTES_CHANNEL, route.tool);
    return true;
  }

  async deleteRoute(tool: string): Promise<void> {
    await this.redis.del(`${P}route:${tool}`);
    await this.redis.publish(ROUTES_CHANNEL, tool);
  }

  async getRoute(tool: string): Promise<Route | undefined> {
    return parse<Route>(await this.redis.get(`${P}route:${tool}`));
  }

  async watchRoutes(onChange: (tool: string) => void): Promise<void> {
    this.subscriber ??= duplicateConnection(this.redis);
    this.subscriber.on("message", (channel: string, tool: string) => {
      if (channel === ROUTES_CHANNEL) onChange(tool);
    });
    await this.subscriber.subscribe(ROUTES_CHANNEL);
  }

  async close(): Promise<void> {
    const all = [this.redis, ...this.tx.map((t) => t.conn), ...(this.subscriber ? [this.subscriber] : [])];
    await Promise.all(all.map(closeConnection));
  }

  /** EVALSHA keeps the script text off the wire; a Redis that lost its script cache gets it once more. */
  private async script(text: string, sha: string, keys: string[], args: (string | number)[]) {
    try {
      return await this.redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!String((error as Error).message).startsWith("NOSCRIPT")) throw error;
      return this.redis.eval(text, keys.length, ...keys, ...args);
    }
  }

  /**
   * Read-modify-write under WATCH so concurrent updates (a cancel during a build) are not lost. With
   * `guard`, the write happens only if the current record passes it; otherwise undefined. With `event`,
   * the state event of the new record is appended in the same MULTI: a status is never written without
   * its event, nor an event recorded for a write that did not happen.
   */
  private patch<T extends object>(
    key: string,
    patch: Partial<T>,
    what: string,
    options?: { event?: ((next: T) => StateEvent) | undefined },
  ): Promise<T>;
  private patch<T extends object>(
    key: string,
    patch: Partial<T>,
    what: string,
    options: { guard: (current: T) => boolean; event?: ((next: T) => StateEvent) | undefined },
  ): Promise<T | undefined>;
  private patch<T extends object>(
    key: string,
    patch: Partial<T>,
    what: string,
    { guard, event }: { guard?: (current: T) => boolean; event?: ((next: T) => StateEvent) | undefined } = {},
  ): Promise<T | undefined> {
    const slot = this.tx[hashOf(key) % this.tx.length]!;
    const tx = slot.conn;
    const attempt = async (): Promise<T | undefined> => {
      for (let i = 0; i < 20; i++) {
        await tx.watch(key);
        const current = parse<T>(await tx.get(key));
        if (!current) {
          await tx.unwatch();
          throw new NotFoundError(`${what} does not exist`);
        }
        if (guard && !guard(current)) {
          await tx.unwatch();
          return undefined;
        }
        const next = { ...current, ...patch };
        const multi = tx.multi().set(key, JSON.stringify(next));
        const done = await (event ? appendStateEvent(multi, event(next)) : multi).exec();
        if (done !== null) return next;
      }
      throw new ConflictError(`${what} is being changed concurrently; try again`);
    };
    const result = slot.queue.then(attempt, attempt);
    slot.queue = result.catch(() => undefined);
    return result;
  }

  /** Members of a creation-time index after `after`, in index order (`reverse`: newest first). */
  private async pageAfter(key: string, after: PageKey, limit: number, reverse: boolean): Promise<string[]> {
    const ids = await this.script(
      PAGE_AFTER,
      PAGE_AFTER_SHA,
      [key],
      [String(after.at), after.id, limit, reverse ? "1" : "0"],
    );
    return ids as string[];
  }

  private async many<T>(keys: string[]): Promise<T[]> {
    if (keys.length === 0) return [];
    const values = await this.redis.mget(...keys);
    return values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as T]));
  }
}

function buildEvent({ id, tool, status, reason }: Build): StateEvent {
  return { kind: "build", id, tool, status, reason };
}

function releaseEvent({ id, tool, build_id, status, reason }: Release): StateEvent {
  return { kind: "release", id, tool, build_id, status, reason };
}

const SECRET_FIELDS = {
  token: "token_hash",
  webhook: "webhook_secret_hash",
  redeploy: "redeploy_token_hash",
} as const satisfies Record<SecretKind, keyof Tool>;

/**
 * One push, atomically (see StateStore.intakePush). KEYS: delivery, commit claim, build, the tool's
 * build index, the component's newest build, outbox list, outbox unmoved set, state event stream, then
 * the rate limits' buckets in order. ARGV: key prefix, has delivery, delivery TTL, force, build id, build
 * JSON, created ms, queued answer, duplicate answer, superseded fields, state stream's MAXLEN, new
 * build's state event, superseded reason, outbox channel, then each bucket's capacity per minute.
 *
 * The buckets come first, before the redelivery check, as the separate limiter calls did: a limited
 * delivery is answered 429 with nothing else read or written, and a webhook costs one round trip.
 *
 * The waiting build it supersedes is found through `newest` and read by a key built here, not passed
 * in KEYS: fine on the one Redis Slipway uses, not on a cluster. Its record is patched by appending
 * the changed fields (JSON.parse keeps the last of repeated keys) rather than re-encoding it, because
 * Redis's cjson turns empty arrays into objects. Only a build still `pending` is superseded; a builder
 * marks a build running only if it is still pending (startBuild), so exactly one of the two wins.
 */
const INTAKE = `${TAKE_TOKEN_LUA}
local P, has_delivery, id = ARGV[1], ARGV[2] == '1', ARGV[5]
for i = 9, #KEYS do
  local allowed, wait = take_token(KEYS[i], tonumber(ARGV[i + 6]))
  if allowed == 0 then return {'limited', (i - 9) .. ':' .. wait} end
end
if has_delivery then
  local seen = redis.call('GET', KEYS[1])
  if seen then return {'redelivery', seen} end
end
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
local existing = redis.call('GET', KEYS[2])
if existing then
  if has_delivery then
    local answer = string.gsub(ARGV[9], '{{build}}', function() return existing end)
    redis.call('SET', KEYS[1], answer, 'EX', ARGV[3])
  end
  return {'duplicate', existing}
end
redis.call('SET', KEYS[2], id)
redis.call('SET', KEYS[3], ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[7], id)
redis.call('RPUSH', KEYS[6], id)
redis.call('SADD', KEYS[7], id)
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[11], '*', 'event', ARGV[12])
local older = redis.call('GET', KEYS[5])
redis.call('SET', KEYS[5], id)
local superseded = ''
if older and older ~= id then
  local okey = P .. 'build:' .. older
  local raw = redis.call('GET', okey)
  if raw and string.sub(raw, -1) == '}' then
    local b = cjson.decode(raw)
    if b.status == 'pending' then
      redis.call('SET', okey, string.sub(raw, 1, -2) .. ARGV[10])
      local ckey = P .. 'commit:' .. b.tool .. ':' .. b.component .. ':' .. b.commit
      if redis.call('GET', ckey) == older then redis.call('DEL', ckey) end
      redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[11], '*', 'event', cjson.encode({kind = 'build',
        id = older, tool = b.tool, status = 'superseded', reason = ARGV[13]}))
      -- Already taken by a mover: it may be in the job queue, so the mover takes it off again.
      if redis.call('SREM', KEYS[7], older) == 0 then redis.call('RPUSH', KEYS[6], 'x:' .. older) end
      superseded = older
    end
  end
end
if has_delivery then redis.call('SET', KEYS[1], ARGV[8], 'EX', ARGV[3]) end
redis.call('PUBLISH', ARGV[14], '')
return {'queued', superseded}`;
const INTAKE_SHA = createHash("sha1").update(INTAKE).digest("hex");

/** KEYS[1] the route; ARGV[1] the new route, ARGV[2] the release the current route must name. */
const REPLACE_ROUTE = `
local current = redis.call("GET", KEYS[1])
if not current or cjson.decode(current).release_id ~= ARGV[2] then return 0 end
redis.call("SET", KEYS[1], ARGV[1])
return 1
`;
const REPLACE_ROUTE_SHA = createHash("sha1").update(REPLACE_ROUTE).digest("hex");

/**
 * One page of a creation-time index (KEYS: the sorted set; ARGV: time, id, count, reverse) starting
 * after the item (time, id), which may be gone since. ZCOUNT finds where its time begins (O(log n));
 * items of the same time are in id order (reversed for ZREVRANGE), so those up to the id are skipped.
 */
const PAGE_AFTER = `
local at, id, count, rev = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local start
if rev then start = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
else start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1]) end
local out = {}
while #out < count do
  local chunk
  if rev then chunk = redis.call('ZREVRANGE', KEYS[1], start, start + count - 1, 'WITHSCORES')
  else chunk = redis.call('ZRANGE', KEYS[1], start, start + count - 1, 'WITHSCORES') end
  if #chunk == 0 then break end
  for i = 1, #chunk, 2 do
    local m, t = chunk[i], tonumber(chunk[i + 1])
    local past = t ~= at or (rev and m < id) or ((not rev) and m > id)
    if past and #out < count then out[#out + 1] = m end
  end
  start = start + count
end
return out`;
const PAGE_AFTER_SHA = createHash("sha1").update(PAGE_AFTER).digest("hex");

function hashOf(key: string): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) >>> 0;
  return h;
}

function parse<T>(value: string | null): T | undefined {
  return value === null ? undefined : (JSON.parse(value) as T);
}
