import { ConflictError, InputError, NotFoundError } from "../../platform/errors.js";
import type { LogLine } from "../../ports/logs.js";
import type { ClusterHealthView } from "../../ports/cluster-health.js";
import type { ProcessLogs, WebserviceMarks } from "../../ports/process-logs.js";
import type { AppRuntime } from "../../ports/runtime.js";
import { hasNoWebservice, type ReleaseStore, type RouteStore } from "../../ports/store.js";
import { NO_WEBSERVICE, webSettings } from "./deployer.js";
import type { Release } from "./release.js";

/** Makes a new release of `base` (default: the live one) and queues its deploy; null when there is none. */
export type RestartRelease = (
  tool: string,
  why: string,
  actor: string,
  base?: Release,
) => Promise<string | null>;

export interface WebserviceStatus {
  readonly tool: string;
  /**
   * running: routed and its container is up; stopped: by `webservice stop`; missing: routed, no container;
   * unknown: routed, but the cluster cannot be asked (see `kubernetes`).
   */
  readonly state: "running" | "stopped" | "missing" | "none" | "unknown";
  readonly release_id: string | null;
  readonly commit: string | null;
  readonly image_digest: string | null;
  /** The first replica's address (the only one's, without replicas). */
  readonly address: string | null;
  /** Copies wanted: the live release's `run.replicas` (on a cluster, what its Deployment asks for). */
  readonly replicas_wanted: number | null;
  /** Copies up and ready to take traffic. */
  readonly replicas_ready: number | null;
  /** The live release's web processes that are up, in replica order (locally; a cluster's pods are not listed). */
  readonly replicas: readonly { readonly replica: number; readonly address: string }[];
  readonly started_at: string | null;
  readonly stopped_at: string | null;
  /** Releases whose output is kept, newest first. */
  readonly logged_releases: readonly string[];
  /** Why the state is what it is, when that is not obvious (a live release without a webservice). */
  readonly note: string | null;
  /** On a cluster: whether it answers, and its warnings (a missing Ingress class); null locally. */
  readonly kubernetes: ClusterHealthView | null;
}

export interface Replicas {
  readonly ready: number;
  readonly desired: number;
}

/** Where the runtime can tell (a cluster's Deployment status), how many of a release's web pods are ready. */
export type ReplicasOf = (tool: string, releaseId: string) => Promise<Replicas | undefined>;

export const MAX_TAIL = 2000;

/**
 * `webservice status|logs|restart|stop|start`: what serves a tool, its kept output, and the verbs that
 * change it. Restart and start go through the usual release path (a new release of the image, rolled
 * out without downtime); stop removes the route first, so the proxy answers 503 at once, then the container.
 */
export class WebserviceService {
  constructor(
    private readonly deps: {
      readonly store: ReleaseStore & RouteStore;
      readonly runtime: Pick<AppRuntime, "list" | "stop">;
      readonly logs: ProcessLogs;
      readonly marks: WebserviceMarks;
      readonly restart: RestartRelease;
      readonly replicas?: ReplicasOf | undefined;
      /** The cluster's health: while it is unavailable the status says so instead of failing. */
      readonly cluster?: (() => ClusterHealthView) | undefined;
    },
  ) {}

  async status(tool: string): Promise<WebserviceStatus> {
    const { store, runtime, logs, marks } = this.deps;
    const [route, stopped, logged] = await Promise.all([
      store.getRoute(tool),
      marks.getStopped(tool),
      logs.releases(tool),
    ]);
    const releaseId = route?.release_id ?? stopped?.release_id;
    const release = releaseId ? await store.getRelease(releaseId) : undefined;
    const kubernetes = this.deps.cluster?.() ?? null;
    const unreachable = kubernetes !== null && kubernetes.status !== "available";
    // A cluster's Deployment status knows its pods; locally the runtime lists the processes.
    const counted =
      route && this.deps.replicas && !unreachable
        ? await this.deps.replicas(tool, route.release_id)
        : undefined;
    const up =
      route && !counted && !unreachable
        ? (await runtime.list(tool))
            .filter((a) => a.process === "web" && a.releaseId === route.release_id)
            .sort((a, b) => (a.replica ?? 0) - (b.replica ?? 0))
        : [];
    const ready = counted ? counted.ready : up.length;
    const none = route !== undefined && hasNoWebservice(route);
    return {
      tool,
      state: none
        ? "none"
        : route
          ? unreachable
            ? "unknown"
            : ready > 0
              ? "running"
              : "missing"
          : stopped
            ? "stopped"
            : "none",
      release_id: releaseId ?? null,
      commit: release?.commit ?? null,
      image_digest: release?.image_digest ?? null,
      address: route && !none ? `${route.host}:${route.port}` : null,
      replicas_wanted: counted ? counted.desired : route && release ? webSettings(release, 0).replicas : null,
      replicas_ready: route && !none && !unreachable ? ready : null,
      replicas: up.map((a, i) => ({
        replica: a.replica ?? i,
        address: `${a.address.host}:${a.address.port}`,
      })),
      started_at: route ? (release?.finished_at ?? null) : null,
      stopped_at: route ? null : (stopped?.at ?? null),
      logged_releases: logged,
      note: none
        ? `the live release has no webservice: ${NO_WEBSERVICE}; its processes run as jobs (\`slipway jobs list\`)`
        : unreachable
          ? `Kubernetes is unavailable (${kubernetes.reason ?? "not reached yet"}): its pods cannot be counted; deploys wait until it answers`
          : null,
      kubernetes,
    };
  }

  /** The last `tail` lines of a release's output (default: the live or last stopped one). */
  async logs(
    tool: string,
    releaseId: string | undefined,
    tail: number,
  ): Promise<{ release_id: string; lines: LogLine[] }> {
    if (!Number.isInteger(tail) || tail < 1 || tail > MAX_TAIL) {
      throw new InputError(`tail must be a whole number from 1 to ${MAX_TAIL}`);
    }
    const id = releaseId ?? (await this.current(tool));
    if (!id) throw new NotFoundError(`tool "${tool}" has no webservice output yet; push to deploy one`);
    if (releaseId !== undefined) {
      const release = await this.deps.store.getRelease(releaseId);
      if (!release || release.tool !== tool)
        throw new NotFoundError(`tool "${tool}" has no release ${releaseId}`);
    }
    return { release_id: id, lines: await this.deps.logs.read(tool, id, tail) };
  }

  follow(tool: string, releaseId: string, after: string, signal: AbortSignal): AsyncIterable<LogLine> {
    return this.deps.logs.follow(tool, releaseId, after, signal);
  }

  async restart(tool: string, actor: string): Promise<{ release_id: string }> {
    const route = await this.deps.store.getRoute(tool);
    if (!route)
      throw new ConflictError(
        `tool "${tool}" has no running webservice to restart; use \`webservice start\``,
      );
    const id = await this.deps.restart(tool, "webservice restart", actor);
    if (!id) throw new ConflictError(`tool "${tool}" has no running webservice to restart`);
    return { release_id: id };
  }

  async stop(tool: string, actor: string): Promise<WebserviceStatus> {
    const { store, runtime, marks } = this.deps;
    const route = await store.getRoute(tool);
    if (!route) {
      if (await marks.getStopped(tool)) return this.status(tool);
      throw new ConflictError(`tool "${tool}" has no running webservice to stop`);
    }
    await marks.setStopped(tool, { release_id: route.release_id, at: new Date().toISOString(), actor });
    // Route first: the proxy stops forwarding before the process goes away.
    await store.deleteRoute(tool);
    for (const app of await runtime.list(tool)) {
      if (app.process === "web") await runtime.stop(app.id);
    }
    return this.status(tool);
  }

  /** Deploys the last live release again (as a new release), after a stop. */
  async start(tool: string, actor: string): Promise<{ release_id: string }> {
    const { store, marks } = this.deps;
    if (await store.getRoute(tool)) throw new ConflictError(`tool "${tool}"'s webservice is already running`);
    const stopped = await marks.getStopped(tool);
    const base = stopped
      ? await store.getRelease(stopped.release_id)
      : (await store.listReleases(tool, 50)).find((r) => r.status === "live" || r.status === "superseded");
    if (!base) throw new NotFoundError(`tool "${tool}" has no release to start; push to deploy one`);
    const id = await this.deps.restart(tool, "webservice start", actor, base);
    if (!id) throw new NotFoundError(`tool "${tool}" has no release to start`);
    await marks.clearStopped(tool);
    return { release_id: id };
  }

  private async current(tool: string): Promise<string | undefined> {
    const route = await this.deps.store.getRoute(tool);
    if (route) return route.release_id;
    return (await this.deps.marks.getStopped(tool))?.release_id ?? (await this.deps.logs.releases(tool))[0];
  }
}
