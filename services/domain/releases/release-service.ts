import { ConflictError, NotFoundError } from "../../platform/errors.js";
import { newId } from "../../platform/ids.js";
import type { BuildLogs, LogLine } from "../../ports/logs.js";
import type { ReleaseStore, RouteStore } from "../../ports/store.js";
import type { Enqueuer } from "../../ports/queue.js";
import { deployLogId, type Release } from "./release.js";

/** A release as `slipway releases` shows it. */
export interface ReleaseView {
  readonly id: string;
  readonly status: Release["status"];
  readonly live: boolean;
  readonly commit: string;
  readonly image: string;
  readonly image_digest: string;
  readonly image_deleted: boolean;
  readonly trigger: Release["trigger"];
  readonly build_id: string;
  readonly rollback_of: string | null;
  /** For a restart (env var change, `webservice restart|start`): the release it deployed again. */
  readonly restart_of: string | null;
  readonly reason: string | null;
  readonly last_probe: string | null;
  readonly log_tail: readonly string[];
  readonly created_at: string;
  readonly finished_at: string | null;
}

/** Listing a tool's releases and rolling back to an earlier one: a new release, no build. */
export class ReleaseService {
  constructor(
    private readonly deps: {
      readonly store: ReleaseStore & RouteStore;
      readonly queue: Enqueuer;
      /** Shown when a rollback target's image was deleted. */
      readonly keepReleases: number;
      /** Deploy logs: a rollback's or restart's own, a push's release in its build's. */
      readonly logs?: BuildLogs | undefined;
    },
  ) {}

  async list(tool: string, limit = 50): Promise<ReleaseView[]> {
    const [releases, route] = await Promise.all([
      this.deps.store.listReleases(tool, limit),
      this.deps.store.getRoute(tool),
    ]);
    return releases.map((r) => releaseView(r, r.id === route?.release_id));
  }

  async get(tool: string, id: string): Promise<ReleaseView> {
    const release = await this.deps.store.getRelease(id);
    if (!release || release.tool !== tool) throw new NotFoundError(`no release ${id} for ${tool}`);
    const route = await this.deps.store.getRoute(tool);
    return releaseView(release, release.id === route?.release_id);
  }

  /** The lines its deploy wrote (deployLogId): for a release with no build, its own log. */
  async logs(tool: string, id: string): Promise<{ release_id: string; log_id: string; lines: LogLine[] }> {
    const release = await this.deps.store.getRelease(id);
    if (!release || release.tool !== tool) throw new NotFoundError(`no release ${id} for ${tool}`);
    const logId = deployLogId(release);
    return { release_id: id, log_id: logId, lines: (await this.deps.logs?.read(logId)) ?? [] };
  }

  /**
   * Makes a new release running `targetId`'s image and config (default: the newest release that was live
   * before the current one) and queues its deploy. The deploy runs as any other (health check, switch,
   * old one stopped) but skips the release phase: a rollback runs the old image as it was.
   */
  async rollback(tool: string, targetId: string | undefined, actor: string): Promise<ReleaseView> {
    const { store } = this.deps;
    const route = await store.getRoute(tool);
    let target: Release | undefined;
    if (targetId !== undefined) {
      target = await store.getRelease(targetId);
      if (!target || target.tool !== tool) throw new NotFoundError(`no release ${targetId} for ${tool}`);
    } else {
      const releases = await store.listReleases(tool, 200);
      target = releases.find((r) => r.status === "superseded" && r.id !== route?.release_id);
      if (!target) {
        throw new ConflictError(
          `${tool} has no earlier live release to roll back to; name one with: slipway rollback <release>`,
        );
      }
    }
    if (target.id === route?.release_id) {
      throw new ConflictError(`release ${target.id} is already live`);
    }
    if (target.status === "deploying") {
      throw new ConflictError(`release ${target.id} is still deploying`);
    }
    if (target.image_deleted_at) {
      throw new ConflictError(
        `release ${target.id} (commit ${target.commit.slice(0, 12)}) cannot be rolled back to: its image was deleted on ${target.image_deleted_at} by image retention (only the newest ${this.deps.keepReleases} releases that went live, and anything newer, keep their images: SLIPWAY_KEEP_RELEASES). Build that commit again instead: slipway build start --ref ${target.commit}`,
      );
    }
    const release: Release = {
      id: newId(),
      tool,
      component: target.component,
      build_id: target.build_id,
      commit: target.commit,
      image: target.image,
      image_digest: target.image_digest,
      config: target.config,
      processes: target.processes,
      trigger: { kind: "rollback", ref: target.trigger.ref, actor },
      status: "deploying",
      reason: `rollback to release ${target.id}`,
      rollback_of: target.id,
      created_at: new Date().toISOString(),
    };
    await store.createRelease(release);
    await this.deps.queue.enqueue(
      "deploy",
      { build_id: release.build_id, release_id: release.id },
      release.id,
    );
    return releaseView(release, false);
  }
}

export function releaseView(r: Release, live: boolean): ReleaseView {
  return {
    id: r.id,
    status: r.status,
    live,
    commit: r.commit,
    image: r.image,
    image_digest: r.image_digest,
    image_deleted: r.image_deleted_at !== undefined,
    trigger: r.trigger,
    build_id: r.build_id,
    rollback_of: r.rollback_of ?? null,
    restart_of: r.restart_of ?? null,
    reason: r.reason ?? null,
    last_probe: r.last_probe ?? null,
    log_tail: r.log_tail ?? [],
    created_at: r.created_at,
    finished_at: r.finished_at ?? null,
  };
}
