import type { Build } from "../../services/domain/builds/build.js";
import type { Release } from "../../services/domain/releases/release.js";
import type { Tool } from "../../services/domain/tools/tool.js";
import { ConflictError, NotFoundError } from "../../services/platform/errors.js";
import type {
  PageKey,
  PushIntake,
  PushOutcome,
  Route,
  SecretKind,
  StateStore,
} from "../../services/ports/store.js";

/**
 * StateStore in memory, for unit tests of the domain: no Redis, no I/O, one process. It honours the
 * contract of test/contracts/state-store.ts, which also runs against RedisStore, so the two cannot drift.
 *
 * It lives under test/, not services/adapters/: it is not durable and its watchers hear only this
 * process, so it must never be wired into a server, and tsconfig.build.json leaves it out of dist.
 *
 * Records are copied in and out (as JSON crosses Redis), so a test cannot change stored state by
 * mutating what it got back. Deliveries do not expire (Redis keeps them 24 h; no unit test runs that
 * long).
 */
export class MemoryStore implements StateStore {
  private readonly tools = new Map<string, Tool>();
  private readonly secrets = new Map<string, { tool: string; kind: SecretKind }>();
  private readonly builds = new Map<string, Build>();
  private readonly releases = new Map<string, Release>();
  private readonly routes = new Map<string, Route>();
  /** Commit claims: `tool:component:commit` -> build id. */
  private readonly commits = new Map<string, string>();
  /** The newest build of each `tool:component`, the one a newer push may supersede. */
  private readonly newest = new Map<string, string>();
  private readonly deliveries = new Map<string, string>();
  private readonly toolWatchers = new Set<(tool: string) => void>();
  private readonly routeWatchers = new Set<(tool: string) => void>();
  /**
   * Ids of builds intakePush queued, in order; a superseded build leaves it. What the Redis store's
   * outbox would move into the job queue: tests assert on it instead of running a queue.
   */
  readonly queued: string[] = [];
  /** Tokens taken from intake limits' buckets, by key. */
  private readonly spent = new Map<string, number>();

  createTool(tool: Tool): Promise<void> {
    if (this.tools.has(tool.name))
      return Promise.reject(new ConflictError(`tool "${tool.name}" already exists`));
    this.tools.set(tool.name, copy(tool));
    this.secrets.set(tool.token_hash, { tool: tool.name, kind: "token" });
    this.secrets.set(tool.webhook_secret_hash, { tool: tool.name, kind: "webhook" });
    this.secrets.set(tool.redeploy_token_hash, { tool: tool.name, kind: "redeploy" });
    return Promise.resolve();
  }

  getTool(name: string): Promise<Tool | undefined> {
    return Promise.resolve(copyOrUndefined(this.tools.get(name)));
  }

  listTools(): Promise<Tool[]> {
    // Oldest first, as the Redis store's creation-time index reads.
    const tools = [...this.tools.values()].sort(
      (a, b) => Date.parse(a.created_at) - Date.parse(b.created_at) || compare(a.name, b.name),
    );
    return Promise.resolve(tools.map(copy));
  }

  async listToolsAfter(after: PageKey | undefined, limit: number): Promise<Tool[]> {
    const all = await this.listTools();
    const from = after
      ? all.filter(
          (t) =>
            Date.parse(t.created_at) > after.at ||
            (Date.parse(t.created_at) === after.at && t.name > after.id),
        )
      : all;
    return from.slice(0, limit);
  }

  updateTool(name: string, patch: Partial<Tool>): Promise<Tool> {
    return this.attempt(() => {
      const tool = this.patch(this.tools, name, patch, `tool "${name}"`);
      this.toolChanged(name);
      return tool;
    });
  }

  toolBySecretHash(hash: string): Promise<{ tool: string; kind: SecretKind } | undefined> {
    return Promise.resolve(copyOrUndefined(this.secrets.get(hash)));
  }

  replaceSecretHash(name: string, kind: SecretKind, hash: string, also: Partial<Tool> = {}): Promise<Tool> {
    const before = this.tools.get(name);
    if (!before) return Promise.reject(new NotFoundError(`tool "${name}" does not exist`));
    const field = SECRET_FIELDS[kind];
    const tool = this.patch(this.tools, name, { ...also, [field]: hash }, `tool "${name}"`);
    this.secrets.set(hash, { tool: name, kind });
    this.secrets.delete(before[field]);
    this.toolChanged(name);
    return Promise.resolve(tool);
  }

  watchTools(onChange: (tool: string) => void): Promise<void> {
    this.toolWatchers.add(onChange);
    return Promise.resolve();
  }

  createBuild(build: Build): Promise<void> {
    this.builds.set(build.id, copy(build));
    return Promise.resolve();
  }

  getBuild(id: string): Promise<Build | undefined> {
    return Promise.resolve(copyOrUndefined(this.builds.get(id)));
  }

  updateBuild(id: string, patch: Partial<Build>): Promise<Build> {
    return this.attempt(() => this.patch(this.builds, id, patch, `build ${id}`));
  }

  listBuilds(tool: string, limit: number, before?: PageKey): Promise<Build[]> {
    const older = [...this.builds.values()].filter(
      (b) =>
        !before ||
        Date.parse(b.created_at) < before.at ||
        (Date.parse(b.created_at) === before.at && b.id < before.id),
    );
    return Promise.resolve(newestFirst(older, tool, limit));
  }

  intakePush(intake: PushIntake): Promise<PushOutcome> {
    const { build } = intake;
    for (const [index, limit] of (intake.limits ?? []).entries()) {
      if (limit.perMinute <= 0) continue;
      // A bucket that never refills: enough for tests, which spend a budget within seconds.
      const spent = this.spent.get(limit.key) ?? 0;
      if (spent >= limit.perMinute)
        return Promise.resolve({ kind: "limited", index, retryAfterMs: 60_000 / limit.perMinute });
      this.spent.set(limit.key, spent + 1);
    }
    const delivery = intake.delivery === undefined ? undefined : `${build.tool}:${intake.delivery}`;
    if (delivery !== undefined) {
      const seen = this.deliveries.get(delivery);
      if (seen !== undefined) return Promise.resolve({ kind: "redelivery", answer: seen });
    }
    const claim = `${build.tool}:${build.component}:${build.commit}`;
    if (intake.force) this.commits.delete(claim);
    const existing = this.commits.get(claim);
    if (existing !== undefined) {
      if (delivery !== undefined)
        this.deliveries.set(delivery, intake.duplicateAnswer.replaceAll("{{build}}", existing));
      return Promise.resolve({ kind: "duplicate", build_id: existing });
    }
    this.commits.set(claim, build.id);
    this.builds.set(build.id, copy(build));
    this.queued.push(build.id);
    const component = `${build.tool}:${build.component}`;
    const olderId = this.newest.get(component);
    this.newest.set(component, build.id);
    let superseded: string | undefined;
    const older = olderId === undefined || olderId === build.id ? undefined : this.builds.get(olderId);
    if (older?.status === "pending") {
      this.builds.set(older.id, {
        ...older,
        status: "superseded",
        reason: intake.supersededReason,
        finished_at: new Date().toISOString(),
      });
      const olderClaim = `${older.tool}:${older.component}:${older.commit}`;
      if (this.commits.get(olderClaim) === older.id) this.commits.delete(olderClaim);
      const at = this.queued.indexOf(older.id);
      if (at >= 0) this.queued.splice(at, 1);
      superseded = older.id;
    }
    if (delivery !== undefined) this.deliveries.set(delivery, intake.queuedAnswer);
    return Promise.resolve({ kind: "queued", superseded });
  }

  startBuild(id: string, patch: Partial<Build>): Promise<Build | undefined> {
    return this.attempt(() =>
      this.patch(this.builds, id, patch, `build ${id}`, (b) => b.status === "pending"),
    );
  }

  takeOverBuild(id: string, builder: string | undefined, patch: Partial<Build>): Promise<Build | undefined> {
    return this.attempt(() =>
      this.patch(
        this.builds,
        id,
        patch,
        `build ${id}`,
        (b) => b.status === "running" && b.builder === builder,
      ),
    );
  }

  releaseCommit(tool: string, component: string, commit: string): Promise<void> {
    this.commits.delete(`${tool}:${component}:${commit}`);
    return Promise.resolve();
  }

  rememberDelivery(tool: string, key: string, answer: string): Promise<string | undefined> {
    const k = `${tool}:${key}`;
    const seen = this.deliveries.get(k);
    if (seen === undefined) this.deliveries.set(k, answer);
    return Promise.resolve(seen);
  }

  answerDelivery(tool: string, key: string, answer: string): Promise<void> {
    this.deliveries.set(`${tool}:${key}`, answer);
    return Promise.resolve();
  }

  createRelease(release: Release): Promise<void> {
    this.releases.set(release.id, copy(release));
    return Promise.resolve();
  }

  getRelease(id: string): Promise<Release | undefined> {
    return Promise.resolve(copyOrUndefined(this.releases.get(id)));
  }

  updateRelease(id: string, patch: Partial<Release>): Promise<Release> {
    return this.attempt(() => this.patch(this.releases, id, patch, `release ${id}`));
  }

  listReleases(tool: string, limit: number): Promise<Release[]> {
    return Promise.resolve(newestFirst([...this.releases.values()], tool, limit));
  }

  setRoute(route: Route): Promise<void> {
    this.routes.set(route.tool, copy(route));
    this.routeChanged(route.tool);
    return Promise.resolve();
  }

  replaceRoute(route: Route, expected: string): Promise<boolean> {
    if (this.routes.get(route.tool)?.release_id !== expected) return Promise.resolve(false);
    return this.setRoute(route).then(() => true);
  }

  getRoute(tool: string): Promise<Route | undefined> {
    return Promise.resolve(copyOrUndefined(this.routes.get(tool)));
  }

  deleteRoute(tool: string): Promise<void> {
    this.routes.delete(tool);
    this.routeChanged(tool);
    return Promise.resolve();
  }

  watchRoutes(onChange: (tool: string) => void): Promise<void> {
    this.routeWatchers.add(onChange);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private toolChanged(name: string): void {
    for (const w of this.toolWatchers) w(name);
  }

  /** Route watchers hear of a change after the write returns, as over Redis pub/sub. */
  private routeChanged(tool: string): void {
    for (const w of this.routeWatchers) queueMicrotask(() => w(tool));
  }

  /** Turns a thrown domain error into a rejection, as the Redis store's async methods reject. */
  private attempt<T>(run: () => T): Promise<T> {
    // An executor that throws rejects the promise.
    return new Promise<T>((resolve) => resolve(run()));
  }

  private patch<T extends object>(records: Map<string, T>, key: string, patch: Partial<T>, what: string): T;
  private patch<T extends object>(
    records: Map<string, T>,
    key: string,
    patch: Partial<T>,
    what: string,
    guard: (current: T) => boolean,
  ): T | undefined;
  private patch<T extends object>(
    records: Map<string, T>,
    key: string,
    patch: Partial<T>,
    what: string,
    guard?: (current: T) => boolean,
  ): T | undefined {
    const current = records.get(key);
    if (!current) throw new NotFoundError(`${what} does not exist`);
    if (guard && !guard(current)) return undefined;
    // Through JSON, as the Redis store writes: a field patched to undefined disappears.
    const next = copy({ ...current, ...patch });
    records.set(key, next);
    return copy(next);
  }
}

const SECRET_FIELDS = {
  token: "token_hash",
  webhook: "webhook_secret_hash",
  redeploy: "redeploy_token_hash",
} as const satisfies Record<SecretKind, keyof Tool>;

/** A tool's records newest first, ties broken as Redis's ZREVRANGE does (greater id first). */
function newestFirst<T extends { id: string; tool: string; created_at: string }>(
  records: T[],
  tool: string,
  limit: number,
): T[] {
  return records
    .filter((r) => r.tool === tool)
    .sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || compare(b.id, a.id))
    .slice(0, Math.max(0, limit))
    .map(copy);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function copy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function copyOrUndefined<T>(value: T | undefined): T | undefined {
  return value === undefined ? undefined : copy(value);
}
