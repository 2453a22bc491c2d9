import type { Build } from "../builds/build.js";
import type { Logger } from "../../platform/logger.js";
import { commitStatusName, type CommitState, type CommitStatusReporter } from "../../ports/forge.js";
import type { ForgeLinkStore, GitlabLinkRecord, StatusStep } from "../../ports/forge-links.js";
import type { EventDelivery, StateEvent, StateEvents } from "../../ports/state-events.js";
import { isLinkedRepository } from "./repository.js";

export interface StatusNotifierDeps {
  readonly events: StateEvents;
  readonly links: ForgeLinkStore;
  readonly getBuild: (id: string) => Promise<Build | undefined>;
  readonly reporterFor: (link: GitlabLinkRecord) => CommitStatusReporter;
  /** The build log URL GitLab links to from the status. */
  readonly logUrl: (buildId: string) => string;
  readonly logger: Logger;
}

/** What one event means on the forge, or nothing. */
interface Step {
  readonly buildId: string;
  readonly state: CommitState;
  readonly claim: StatusStep;
  readonly description: string;
}

/**
 * Mirrors build and release states onto GitLab commit statuses for tools linked to a GitLab project. It
 * consumes the store's durable state events rather than being called by the pipeline, so a forge that is
 * slow or down can delay a status, never a build, and a change made while no notifier ran is posted when
 * one starts.
 *
 * Mapping: build queued → `pending`; build started → `running`; release live → `success`; build failed or
 * release failed → `failed`; build cancelled or superseded → `canceled`. A build that finished building
 * (`deploying`) stays `running` until its release is live or failed. Each step is claimed once per build across processes
 * (`ForgeLinkStore.claimStatus`, steps only forward), so a repeated state, a second notifier or a retried
 * build (pending again after running) posts nothing, and only the first final state counts. The claim
 * carries the event's id: an event delivered again because its handler died mid-post is posted again
 * (GitLab takes a repeated state as a no-op) rather than lost.
 */
export class StatusNotifier {
  /** Per build, the chain of its reports: states are posted in the order they happened. */
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly deps: StatusNotifierDeps) {}

  async start(): Promise<void> {
    await this.deps.events.consume((event, delivery) => this.enqueue(event, delivery));
  }

  /**
   * Resolves when the event is handled: posted, not for GitLab, or given up on by the reporter. Rejects
   * when it could not be looked at (Redis unreachable), so that the event is delivered again.
   */
  enqueue(event: StateEvent, delivery: EventDelivery): Promise<void> {
    // Job runs are not commits: nothing to post.
    if (event.kind === "job") return Promise.resolve();
    const buildId = event.kind === "build" ? event.id : event.build_id;
    const previous = this.chains.get(buildId) ?? Promise.resolve();
    const done = previous.then(() => this.handle(event, delivery.id));
    const settled = done.catch((error: unknown) => {
      this.deps.logger.warn(
        { tool: event.tool, buildId, attempt: delivery.attempt, err: error },
        "commit status not posted",
      );
    });
    this.chains.set(buildId, settled);
    void settled.finally(() => {
      if (this.chains.get(buildId) === settled) this.chains.delete(buildId);
    });
    return done;
  }

  private async handle(event: Exclude<StateEvent, { kind: "job" }>, eventId: string): Promise<void> {
    const step = stepFor(event);
    if (step === undefined) return;
    // The one lookup every event of an unlinked tool costs.
    const link = await this.deps.links.get(event.tool);
    if (link === undefined) return;
    const build = await this.deps.getBuild(step.buildId);
    if (build === undefined || !isSha(build.commit)) return;
    // A push to Slipway's own git remote (or another repository) is not a commit GitLab knows.
    const fromGitlab = build.trigger.kind === "gitlab_push" || build.trigger.kind === "gitlab_tag";
    if (!fromGitlab && !isLinkedRepository(link, build.source_url)) return;
    if (!(await this.deps.links.claimStatus(build.id, step.claim, eventId))) return;
    const log = this.deps.logger.child({
      tool: event.tool,
      build_id: build.id,
      project_id: link.project_id,
      state: step.state,
    });
    const result = await this.deps.reporterFor(link).report({
      projectId: link.project_id,
      sha: build.commit,
      ref: shortRef(build.ref),
      name: commitStatusName(build.component),
      state: step.state,
      targetUrl: this.deps.logUrl(build.id),
      description: step.description,
    });
    if (result.ok) log.info({ outcome: result.outcome, attempts: result.attempts }, "commit status posted");
    else
      log.warn(
        { code: result.code, attempts: result.attempts, reason: result.message },
        "commit status not posted",
      );
  }
}

function stepFor(event: Exclude<StateEvent, { kind: "job" }>): Step | undefined {
  if (event.kind === "build") {
    const buildId = event.id;
    switch (event.status) {
      case "pending":
        return { buildId, state: "pending", claim: "pending", description: "Slipway: build queued" };
      case "running":
        return { buildId, state: "running", claim: "running", description: "Slipway: building" };
      case "deploying":
        // Still running on the forge (claimed once, so a build already reported running posts nothing).
        return { buildId, state: "running", claim: "running", description: "Slipway: deploying" };
      case "failure":
        return { buildId, state: "failed", claim: "final", description: event.reason ?? "build failed" };
      case "cancelled":
      case "superseded":
        return { buildId, state: "canceled", claim: "final", description: event.reason ?? event.status };
      case "success":
        // The release is live; its own event says so too, and only the first final state is posted.
        return {
          buildId,
          state: "success",
          claim: "final",
          description: `Slipway: ${event.reason ?? "live"}`,
        };
    }
  }
  switch (event.status) {
    case "live":
      return {
        buildId: event.build_id,
        state: "success",
        claim: "final",
        description: `Slipway: live as release ${event.id}`,
      };
    case "failed":
      return {
        buildId: event.build_id,
        state: "failed",
        claim: "final",
        description: `deploy failed: ${event.reason ?? "see the build log"}`,
      };
    case "deploying":
    case "superseded":
      // Deploying is still "running" on the forge; superseded comes after live, already reported.
      return undefined;
  }
}

/** GitLab wants the branch or tag name (`main`, `v1.2`), as its push events' `ref` without the prefix. */
export function shortRef(ref: string): string {
  return ref.replace(/^refs\/(heads|tags)\//, "");
}

function isSha(value: string): boolean {
  return /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(value);
}
