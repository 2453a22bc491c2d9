import type { Logger } from "../../platform/logger.js";
import { newId } from "../../platform/ids.js";
import type { StateStore } from "../../ports/store.js";
import { isBlankSha, isCommitSha, type Build, type Trigger } from "../builds/build.js";
import type { Tool } from "../tools/tool.js";
import { decide } from "./deploy-policy.js";
import type { Enqueuer } from "./jobs-port.js";

/** One pushed ref, from whichever door it came through (git remote, GitLab, redeploy, API). */
export interface PushEvent {
  readonly tool: Tool;
  readonly ref: string;
  /** The commit to build; blank (all zeros) or null for a deletion. */
  readonly commit: string | null;
  readonly sourceUrl: string;
  readonly defaultBranch: string | undefined;
  readonly trigger: Trigger;
  /** Skip the deploy policy (API `build start`, redeploy hook): the caller asked for this ref. */
  readonly explicit?: boolean;
  /** Build again even if this commit was built before. */
  readonly force?: boolean;
  /** Build without cached layers; implies `force`. */
  readonly noCache?: boolean;
}

export type TriggerResult =
  | { readonly status: "queued"; readonly build_id: string; readonly commit: string; readonly reason: string }
  | {
      readonly status: "duplicate";
      readonly build_id: string;
      readonly commit: string;
      readonly reason: string;
    }
  | { readonly status: "ignored"; readonly reason: string };

/** Every build is of one component for now: the tool's webservice. */
export const DEFAULT_COMPONENT = "web";

export class TriggerService {
  constructor(
    private readonly store: StateStore,
    private readonly queue: Enqueuer,
    private readonly logger: Logger,
  ) {}

  async push(event: PushEvent): Promise<TriggerResult> {
    const log = this.logger.child({ tool: event.tool.name, ref: event.ref, trigger: event.trigger.kind });
    if (event.commit === null || isBlankSha(event.commit)) {
      return { status: "ignored", reason: `${event.ref} was deleted; nothing to build` };
    }
    if (!isCommitSha(event.commit)) {
      return { status: "ignored", reason: `"${event.commit.slice(0, 80)}" is not a full commit id` };
    }
    const decision = event.explicit
      ? { deploy: true, reason: `${event.trigger.kind} of ${event.ref}` }
      : decide(event.tool.deploy, event.ref, event.defaultBranch);
    if (!decision.deploy) {
      log.info({ reason: decision.reason }, "push ignored by deploy policy");
      return { status: "ignored", reason: decision.reason };
    }

    const id = newId();
    const component = DEFAULT_COMPONENT;
    // --no-cache asks for a fresh build of what is there, usually a commit already built: it implies --force.
    if (event.force || event.noCache) {
      await this.store.releaseCommit(event.tool.name, component, event.commit);
    }
    const existing = await this.store.claimCommit(event.tool.name, component, event.commit, id);
    if (existing !== undefined) {
      return {
        status: "duplicate",
        build_id: existing,
        commit: event.commit,
        reason: `commit ${event.commit.slice(0, 12)} was already built for ${event.tool.name} (build ${existing}); use build start --force to build it again`,
      };
    }
    const build: Build = {
      id,
      tool: event.tool.name,
      component,
      commit: event.commit,
      ref: event.ref,
      source_url: event.sourceUrl,
      trigger: event.trigger,
      status: "pending",
      phase: "queued",
      reason: decision.reason,
      created_at: new Date().toISOString(),
      no_cache: event.noCache ?? false,
    };
    await this.store.createBuild(build);
    const source = { url: event.sourceUrl, ref: event.ref, default_branch: event.defaultBranch ?? "" };
    const known = event.tool.source;
    if (
      !known ||
      known.url !== source.url ||
      known.ref !== source.ref ||
      known.default_branch !== source.default_branch
    ) {
      await this.store.updateTool(event.tool.name, { source });
    }
    await this.queue.enqueue("build", { build_id: id, tool: event.tool.name }, id);
    log.info({ buildId: id, sha: event.commit }, "build queued");
    await this.supersedeWaiting(build, log);
    return { status: "queued", build_id: id, commit: event.commit, reason: decision.reason };
  }

  /**
   * At most one build of a tool's component waits: a newer push replaces the waiting one, which is
   * marked superseded and frees its commit. A build already running is left to finish.
   */
  private async supersedeWaiting(newer: Build, log: Logger): Promise<void> {
    const olderId = await this.store.swapNewestBuild(newer.tool, newer.component, newer.id);
    if (olderId === undefined || olderId === newer.id) return;
    // Only a build still waiting in the queue is replaced; one already running finishes.
    if (!(await this.queue.removeWaiting("build", olderId))) return;
    const older = await this.store.updateBuild(olderId, {
      status: "superseded",
      reason: `superseded by build ${newer.id} (${newer.ref} at ${newer.commit.slice(0, 12)}) before it started`,
      finished_at: new Date().toISOString(),
    });
    await this.store.releaseCommit(older.tool, older.component, older.commit);
    log.info({ buildId: older.id, by: newer.id }, "waiting build superseded");
  }
}
