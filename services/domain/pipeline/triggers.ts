import type { Logger } from "../../platform/logger.js";
import { newId } from "../../platform/ids.js";
import type { BucketTake } from "../../ports/rate-limiter.js";
import type { BuildStore, ToolStore } from "../../ports/store.js";
import { isBlankSha, isCommitSha, type Build, type Trigger } from "../builds/build.js";
import type { Tool } from "../tools/tool.js";
import { decide } from "./deploy-policy.js";

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
  /**
   * A webhook delivery's Idempotency-Key: a delivery with a key seen before is answered as the first
   * one was (`redelivery: true`) and starts nothing.
   */
  readonly delivery?: string | undefined;
  /** Rate limits taken in the intake's own atomic step, so a webhook costs one store round trip. */
  readonly limits?: IntakeLimits;
}

/**
 * A delivery's rate limits, waiting to be taken. `take` is called only when the push reaches the
 * intake: a caller whose push was answered before it (a deleted ref, the deploy policy) still has them
 * to take itself. An empty bucket makes the push throw `refuse`'s error for it, queueing nothing.
 */
export interface IntakeLimits {
  take(): readonly BucketTake[];
  refuse(index: number, retryAfterMs: number): Error;
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

export type PushAnswer = TriggerResult & { readonly redelivery?: boolean };

/** Delivery ids are clipped: they come from senders and become part of a Redis key. */
export const MAX_DELIVERY_KEY = 200;

/**
 * The answer to a delivery whose id was seen before, from what the first one stored: it starts
 * nothing, and says so (`redelivery: true`). "pending" means the first is still being answered. The one
 * place both the push intake (TriggerService) and answerOnce turn a stored answer into a reply.
 */
export function replayAnswer(stored: string): PushAnswer {
  if (stored === "pending") {
    return { status: "ignored", reason: "this delivery is already being handled", redelivery: true };
  }
  const first = JSON.parse(stored) as TriggerResult;
  if (first.status === "queued") return { ...first, status: "duplicate", redelivery: true };
  return { ...first, redelivery: true };
}

/** Every build is of one component for now: the tool's webservice. */
export const DEFAULT_COMPONENT = "web";

export class TriggerService {
  constructor(
    private readonly store: ToolStore & BuildStore,
    private readonly logger: Logger,
  ) {}

  async push(event: PushEvent): Promise<PushAnswer> {
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
      this.logger.debug(
        { tool: event.tool.name, ref: event.ref, trigger: event.trigger.kind, reason: decision.reason },
        "push ignored by deploy policy",
      );
      return { status: "ignored", reason: decision.reason };
    }

    const id = newId();
    const component = DEFAULT_COMPONENT;
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
    const queued = { status: "queued", build_id: id, commit: event.commit, reason: decision.reason } as const;
    const duplicate = (existing: string) =>
      ({
        status: "duplicate",
        build_id: existing,
        commit: build.commit,
        reason: `commit ${build.commit.slice(0, 12)} was already built for ${build.tool} (build ${existing}); use build start --force to build it again`,
      }) as const;
    // Idempotency, commit dedupe, the build record, its way into the job queue and superseding the
    // waiting build are one atomic store step: no crash or race between them can build twice or lose
    // the push. --no-cache asks for a fresh build of what is there, so it implies --force.
    const outcome = await this.store.intakePush({
      build,
      force: event.force === true || event.noCache === true,
      delivery: event.delivery?.slice(0, MAX_DELIVERY_KEY),
      queuedAnswer: JSON.stringify(queued),
      duplicateAnswer: JSON.stringify(duplicate("{{build}}")),
      supersededReason: `superseded by build ${id} (${event.ref} at ${event.commit.slice(0, 12)}) before it started`,
      limits: event.limits?.take(),
    });
    if (outcome.kind === "limited") {
      throw event.limits?.refuse(outcome.index, outcome.retryAfterMs) ?? new Error("limited without limits");
    }
    // "pending": the redeploy hook (answerOnce) claimed the key and is still answering it.
    if (outcome.kind === "redelivery") return replayAnswer(outcome.answer);
    if (outcome.kind === "duplicate") return duplicate(outcome.build_id);

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
    // Debug, not info: at webhook rates a line per delivery costs more than the delivery itself.
    this.logger.debug(
      { tool: build.tool, buildId: id, sha: build.commit, superseded: outcome.superseded },
      "build queued",
    );
    return queued;
  }
}
