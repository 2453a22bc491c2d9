import type { Build } from "../domain/builds/build.js";
import type { Release } from "../domain/releases/release.js";
import type { Tool } from "../domain/tools/tool.js";

export type SecretKind = "token" | "webhook" | "redeploy";

/** One process the front proxy can forward to. */
export interface Upstream {
  readonly host: string;
  readonly port: number;
}

/** Where a tool's webservice is reachable; the front proxy follows it. */
export interface Route {
  readonly tool: string;
  readonly release_id: string;
  /** The first (or only) upstream; kept beside `upstreams` for readers that want one address. */
  readonly host: string;
  readonly port: number;
  /** Every replica of the release, in replica order; absent in routes set before replicas existed. */
  readonly upstreams?: readonly Upstream[] | undefined;
}

/** The processes a route spreads requests over. */
export function upstreamsOf(route: Route): readonly Upstream[] {
  return route.upstreams && route.upstreams.length > 0
    ? route.upstreams
    : [{ host: route.host, port: route.port }];
}

/** Durable state: tools, builds, releases and routes. One Redis in both profiles. */
export interface StateStore {
  createTool(tool: Tool): Promise<void>;
  getTool(name: string): Promise<Tool | undefined>;
  listTools(): Promise<Tool[]>;
  updateTool(name: string, patch: Partial<Tool>): Promise<Tool>;
  /** The tool a secret (token, webhook secret, redeploy token) belongs to, by the secret's hash. */
  toolBySecretHash(hash: string): Promise<{ tool: string; kind: SecretKind } | undefined>;
  /** Replaces a tool's secret (by its new hash): the old secret stops working at once. */
  replaceSecretHash(tool: string, kind: SecretKind, hash: string): Promise<Tool>;

  createBuild(build: Build): Promise<void>;
  getBuild(id: string): Promise<Build | undefined>;
  updateBuild(id: string, patch: Partial<Build>): Promise<Build>;
  /** Newest first. */
  listBuilds(tool: string, limit: number): Promise<Build[]>;
  /**
   * Claims a commit for building. Returns undefined when this build got it, or the id of the build
   * that already has it: the same commit is never built twice for one tool and component.
   */
  claimCommit(tool: string, component: string, commit: string, buildId: string): Promise<string | undefined>;
  releaseCommit(tool: string, component: string, commit: string): Promise<void>;
  /**
   * Records `buildId` as the newest build queued for a tool's component and returns the one recorded
   * before it, atomically: how a newer push finds the build it replaces without listing builds.
   */
  swapNewestBuild(tool: string, component: string, buildId: string): Promise<string | undefined>;
  /**
   * Remembers a webhook delivery for 24 h. Returns undefined the first time, or the answer given to
   * the first delivery with this key.
   */
  rememberDelivery(tool: string, key: string, answer: string): Promise<string | undefined>;
  /** Replaces the remembered answer of a delivery, keeping its expiry. */
  answerDelivery(tool: string, key: string, answer: string): Promise<void>;

  createRelease(release: Release): Promise<void>;
  getRelease(id: string): Promise<Release | undefined>;
  updateRelease(id: string, patch: Partial<Release>): Promise<Release>;
  listReleases(tool: string, limit: number): Promise<Release[]>;

  setRoute(route: Route): Promise<void>;
  getRoute(tool: string): Promise<Route | undefined>;
  /** Removes the route (`webservice stop`): the proxy answers 503 for the tool until one is set again. */
  deleteRoute(tool: string): Promise<void>;
  /** Calls `onChange` with the tool name whenever its route changes, from any process. */
  watchRoutes(onChange: (tool: string) => void): Promise<void>;

  close(): Promise<void>;
}
