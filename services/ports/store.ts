import type { Build } from "../domain/builds/build.js";
import type { Release } from "../domain/releases/release.js";
import type { Tool } from "../domain/tools/tool.js";
import type { BucketTake } from "./rate-limiter.js";

export type SecretKind = "token" | "webhook" | "redeploy";

/** One process the front proxy can forward to. */
export interface Upstream {
  readonly host: string;
  readonly port: number;
}

/** A build a push wants queued, and how to answer a delivery that repeats it. */
export interface PushIntake {
  /** The new build record (status pending); kept only if its commit is not claimed already. */
  readonly build: Build;
  /** Forget an earlier build of the same commit first (`build start --force`). */
  readonly force: boolean;
  /** The webhook delivery's Idempotency-Key, when it sent one. */
  readonly delivery?: string | undefined;
  /** What to remember for the delivery when the build is queued. */
  readonly queuedAnswer: string;
  /** What to remember when the commit is already built; `{{build}}` stands for that build's id. */
  readonly duplicateAnswer: string;
  /** Why a waiting build of the same component is superseded by this one. */
  readonly supersededReason: string;
  /**
   * Token buckets to take one token from each, in order, first, in the same atomic step (a webhook's
   * address and tool limits): at the first empty one nothing else happens and the outcome is
   * `limited`, naming it. Tokens taken from the buckets before it stay taken, as separate takes would.
   */
  readonly limits?: readonly BucketTake[] | undefined;
}

export type PushOutcome =
  | { readonly kind: "queued"; readonly superseded: string | undefined }
  | { readonly kind: "duplicate"; readonly build_id: string }
  /** The delivery was seen before: the answer remembered for it. */
  | { readonly kind: "redelivery"; readonly answer: string }
  /** `limits[index]` was empty: no delivery, commit or build was looked at or written. */
  | { readonly kind: "limited"; readonly index: number; readonly retryAfterMs: number };

/** Where a tool's webservice is reachable; the front proxy follows it. */
export interface Route {
  readonly tool: string;
  readonly release_id: string;
  /** The first (or only) upstream; kept beside `upstreams` for readers that want one address. */
  readonly host: string;
  readonly port: number;
  /**
   * Every replica of the release, in replica order; absent in routes set before replicas existed (and
   * on a cluster). Empty: the live release has no webservice (a Procfile without `web`).
   */
  readonly upstreams?: readonly Upstream[] | undefined;
}

/** The processes a route spreads requests over; none when the live release has no webservice. */
export function upstreamsOf(route: Route): readonly Upstream[] {
  return route.upstreams ?? [{ host: route.host, port: route.port }];
}

/** Whether the live release behind a route serves nothing (its Procfile defines no `web`). */
export function hasNoWebservice(route: Route): boolean {
  return route.upstreams !== undefined && route.upstreams.length === 0;
}

/**
 * Where a page of a list ended: the last item's sort time (ms since the epoch, its `created_at`) and its
 * id (a tool's name, a build's id). The next page starts right after it, so items added or removed
 * meanwhile neither repeat nor skip others.
 */
export interface PageKey {
  readonly at: number;
  readonly id: string;
}

/** The page key of a record sorted by creation time. */
export function pageKeyOf(item: { readonly created_at: string }, id: string): PageKey {
  return { at: Date.parse(item.created_at), id };
}

/**
 * Tools and their secrets. Kept apart from the other stores so a service that only reads a tool (or a
 * fake in a unit test) needs only these methods.
 */
export interface ToolStore {
  createTool(tool: Tool): Promise<void>;
  getTool(name: string): Promise<Tool | undefined>;
  listTools(): Promise<Tool[]>;
  /** Oldest first, from just after `after` (from the start when undefined), at most `limit`. */
  listToolsAfter(after: PageKey | undefined, limit: number): Promise<Tool[]>;
  updateTool(name: string, patch: Partial<Tool>): Promise<Tool>;
  /** The tool a secret (token, webhook secret, redeploy token) belongs to, by the secret's hash. */
  toolBySecretHash(hash: string): Promise<{ tool: string; kind: SecretKind } | undefined>;
  /**
   * Replaces a tool's secret (by its new hash): the old secret stops working at once. `also` is written
   * in the same step (the webhook secret's sealed value, which must never outlive its hash).
   */
  replaceSecretHash(tool: string, kind: SecretKind, hash: string, also?: Partial<Tool>): Promise<Tool>;
  /**
   * Calls `onChange` with a tool's name after its record or a secret changed: at once for writes
   * through this store, over pub/sub for writes from other processes.
   */
  watchTools(onChange: (tool: string) => void): Promise<void>;
}

/** Build records, and the commit claims that keep one build per commit. */
export interface BuildStore {
  createBuild(build: Build): Promise<void>;
  getBuild(id: string): Promise<Build | undefined>;
  updateBuild(id: string, patch: Partial<Build>): Promise<Build>;
  /** Newest first; with `before`, from just after that build in this order (the next page). */
  listBuilds(tool: string, limit: number, before?: PageKey): Promise<Build[]>;
  /**
   * Everything a push decides, in one atomic step: the delivery is answered once, the commit is
   * claimed once, the build record is written and put in the queue's outbox (moved to the job queue
   * right after, durably: a crash in between loses nothing), and a build of the same component that
   * has not started yet is marked superseded and frees its commit.
   */
  intakePush(intake: PushIntake): Promise<PushOutcome>;
  /**
   * Marks a pending build as running with `patch`; undefined when it is no longer pending (superseded
   * or cancelled while it waited), in which case it must not run.
   */
  startBuild(id: string, patch: Partial<Build>): Promise<Build | undefined>;
  /**
   * Patches a build only while it is still running on `builder` (its recorded builder, which may be
   * undefined): of two processes recovering the same orphan, one wins. Undefined for the other.
   */
  takeOverBuild(id: string, builder: string | undefined, patch: Partial<Build>): Promise<Build | undefined>;
  /** Frees a commit claimed by intakePush, so it can be built again (its build was cancelled). */
  releaseCommit(tool: string, component: string, commit: string): Promise<void>;
}

/** Webhook deliveries seen, by Idempotency-Key, so a redelivery gets the first answer. */
export interface DeliveryStore {
  /**
   * Remembers a webhook delivery for 24 h. Returns undefined the first time, or the answer given to
   * the first delivery with this key.
   */
  rememberDelivery(tool: string, key: string, answer: string): Promise<string | undefined>;
  /** Replaces the remembered answer of a delivery, keeping its expiry. */
  answerDelivery(tool: string, key: string, answer: string): Promise<void>;
}

/** Release records (what was rolled out, or tried). */
export interface ReleaseStore {
  createRelease(release: Release): Promise<void>;
  getRelease(id: string): Promise<Release | undefined>;
  updateRelease(id: string, patch: Partial<Release>): Promise<Release>;
  /** Newest first. */
  listReleases(tool: string, limit: number): Promise<Release[]>;
}

/** Where each tool's webservice is reachable. */
export interface RouteStore {
  setRoute(route: Route): Promise<void>;
  getRoute(tool: string): Promise<Route | undefined>;
  /**
   * Sets the route only while the current one still names release `expected` (atomically): a restart
   * of the live release's processes never routes back to it after a rollout moved on. False if not set.
   */
  replaceRoute(route: Route, expected: string): Promise<boolean>;
  /** Removes the route (`webservice stop`): the proxy answers 503 for the tool until one is set again. */
  deleteRoute(tool: string): Promise<void>;
  /** Calls `onChange` with the tool name whenever its route changes, from any process. */
  watchRoutes(onChange: (tool: string) => void): Promise<void>;
}

/**
 * Durable state: tools, builds, deliveries, releases and routes. One Redis in both profiles. Wiring code
 * holds this whole store; domain services ask only for the capability ports they use, so a unit test
 * fakes a few methods (test/fakes/memory-store.ts fakes them all, checked by the same contract test as
 * the Redis store).
 */
export interface StateStore extends ToolStore, BuildStore, DeliveryStore, ReleaseStore, RouteStore {
  close(): Promise<void>;
}
