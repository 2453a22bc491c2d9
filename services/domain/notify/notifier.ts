import type { Build } from "../builds/build.js";
import type { JobDefinition, JobRun } from "../jobs/job.js";
import type { Release } from "../releases/release.js";
import type { Logger } from "../../platform/logger.js";
import type { JobBatch, NotifyStore } from "../../ports/notify.js";
import type { NotifyChannel } from "../../ports/notify-channel.js";
import type { EventDelivery, StateEvent, StateEvents } from "../../ports/state-events.js";
import type { Notification } from "./message.js";
import { JOB_MAIL_WINDOW_MS, emailsPolicyOf, isFailedRun, reasonOf, tailOf, wantsJobMail } from "./policy.js";

export interface NotifierDeps {
  readonly events: StateEvents;
  readonly store: NotifyStore;
  /** Where notifications go, tried in this order (roles/server/notify-channels.ts): mail, the webhook. */
  readonly channels: readonly NotifyChannel[];
  readonly getBuild: (id: string) => Promise<Build | undefined>;
  readonly getRelease: (id: string) => Promise<Release | undefined>;
  readonly getJob: (tool: string, name: string) => Promise<JobDefinition | undefined>;
  readonly getRun: (tool: string, job: string, id: string) => Promise<JobRun | undefined>;
  readonly runLog: (tool: string, job: string, runId: string) => Promise<string[]>;
  /** The values of the tool's environment variables: taken out of everything a message carries. */
  readonly secretsOf: (tool: string) => Promise<string[]>;
  /** Base URL of the API, for links in messages. */
  readonly publicUrl: string;
  readonly logger: Logger;
  readonly now?: () => number;
  /** At most one mail per job per window; default an hour. */
  readonly windowMs?: number;
  /** How often due job batches are looked for; default 30 s. */
  readonly sweepMs?: number;
}

/**
 * Tells a tool's maintainers (mail) and its chat integration (outgoing webhook) about what went wrong:
 * a failed build, a failed deploy, a rollback, and ended job runs as each job's `emails` policy asks.
 *
 * It follows the store's durable state events (its own consumer group), so an event recorded while no
 * notifier ran is told when one starts, and an event whose handler died mid-send is told again (at least
 * once). Each channel's delivery of an event is marked in the store after it succeeded, so a redelivered
 * event is not sent again on a channel that already took it. Runs of one job are mailed at most once per
 * window: the first at once, the others counted and mailed together (with the count) when it is up.
 */
export class Notifier {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly now: () => number;
  private readonly windowMs: number;

  constructor(private readonly deps: NotifierDeps) {
    this.now = deps.now ?? Date.now;
    this.windowMs = deps.windowMs ?? JOB_MAIL_WINDOW_MS;
  }

  async start(): Promise<void> {
    await this.deps.events.consume((event, delivery) => this.handle(event, delivery));
    const tick = () => {
      if (this.closed) return;
      this.sweeping = this.sweep()
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error }, "job mail batches not sent; will retry"),
        )
        .finally(() => {
          if (!this.closed) this.timer = setTimeout(tick, this.deps.sweepMs ?? 30_000);
        });
    };
    this.timer = setTimeout(tick, this.deps.sweepMs ?? 30_000);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.sweeping;
    await this.deps.events.close();
  }

  /** Resolves once the event is told on every channel (or needs no telling); rejects to have it redelivered. */
  async handle(event: StateEvent, delivery: EventDelivery): Promise<void> {
    const notification = await this.notificationFor(event, delivery.id);
    if (notification === undefined) return;
    await this.deliver(notification, delivery.id);
  }

  /** Mails every job batch whose window is up. Called on a timer; tests call it directly. */
  async sweep(): Promise<void> {
    const now = this.now();
    for (const batch of await this.deps.store.dueBatches(now, 100)) {
      if (!(await this.deps.store.claimBatch(batch.tool, batch.job, 60_000))) continue;
      const notification = await this.batchNotification(batch);
      // The key names this batch (the window it closes): a batch mailed just before a crash is settled,
      // not mailed again.
      await this.deliver(notification, `batch:${batch.tool}:${batch.job}:${batch.since_ms}`);
      await this.deps.store.settleBatch(batch, now, this.windowMs);
    }
  }

  private async notificationFor(event: StateEvent, eventId: string): Promise<Notification | undefined> {
    const { deps } = this;
    switch (event.kind) {
      case "build": {
        if (event.status !== "failure") return undefined;
        const build = await deps.getBuild(event.id);
        // A failed deploy fails its build too; the release's own event tells it, once.
        if (build === undefined || build.phase === "deploy") return undefined;
        const secrets = await deps.secretsOf(event.tool);
        return {
          tool: event.tool,
          kind: "build_failed",
          subject: `build ${build.id} failed${build.phase ? ` (${build.phase})` : ""}`,
          reason: reasonOf(build.reason ?? event.reason, secrets),
          log_tail: tailOf(build.log_tail, secrets),
          url: `${deps.publicUrl}/api/v1/builds/${build.id}/logs`,
          build_id: build.id,
        };
      }
      case "release": {
        if (event.status !== "failed" && event.status !== "live") return undefined;
        const release = await deps.getRelease(event.id);
        if (release === undefined) return undefined;
        if (event.status === "live" && release.rollback_of === undefined) return undefined;
        const secrets = await deps.secretsOf(event.tool);
        const rollback = release.rollback_of !== undefined;
        return {
          tool: event.tool,
          kind: event.status === "failed" ? "deploy_failed" : "rollback",
          subject:
            event.status === "failed"
              ? `deploy of release ${release.id} failed${rollback ? " (rollback)" : ""}`
              : `rolled back: release ${release.id} runs release ${release.rollback_of ?? ""} again`,
          reason: reasonOf(
            event.status === "failed"
              ? (release.reason ?? event.reason)
              : `rollback to ${release.rollback_of ?? ""}`,
            secrets,
          ),
          log_tail: tailOf(release.log_tail, secrets),
          url: `${deps.publicUrl}/api/v1/tools/${event.tool}/releases`,
          release_id: release.id,
          build_id: release.build_id,
        };
      }
      case "job": {
        const def = await deps.getJob(event.tool, event.job);
        if (!wantsJobMail(emailsPolicyOf(def?.extra), event.status)) return undefined;
        const decision = await deps.store.recordJobRun(
          {
            id: eventId,
            run_id: event.id,
            tool: event.tool,
            job: event.job,
            status: event.status,
            reason: event.reason ?? null,
          },
          this.now(),
          this.windowMs,
        );
        if (decision === "batched") return undefined;
        const failed = isFailedRun(event.status);
        return this.jobNotification(event.tool, event.job, event.id, {
          subject: `job ${event.job} ${failed ? "failed" : "succeeded"}`,
          status: event.status,
          count: failed ? { failed: 1, succeeded: 0 } : { failed: 0, succeeded: 1 },
          reason: event.reason ?? (failed ? null : "exited with code 0"),
        });
      }
    }
  }

  private batchNotification(batch: JobBatch): Promise<Notification> {
    const parts = [
      batch.failed > 0 ? `failed ${batch.failed} time${batch.failed === 1 ? "" : "s"}` : "",
      batch.succeeded > 0 ? `succeeded ${batch.succeeded} time${batch.succeeded === 1 ? "" : "s"}` : "",
    ].filter(Boolean);
    return this.jobNotification(batch.tool, batch.job, batch.last_run_id, {
      subject: `job ${batch.job} ${parts.join(" and ")} since ${new Date(batch.since_ms).toISOString()}`,
      status: batch.last_status,
      count: { failed: batch.failed, succeeded: batch.succeeded },
      reason: batch.last_reason,
    });
  }

  private async jobNotification(
    tool: string,
    job: string,
    runId: string,
    o: {
      subject: string;
      status: string;
      count: { failed: number; succeeded: number };
      reason: string | null;
    },
  ): Promise<Notification> {
    const secrets = await this.deps.secretsOf(tool);
    const lines = (await this.deps.getRun(tool, job, runId)) ? await this.deps.runLog(tool, job, runId) : [];
    return {
      tool,
      kind: "job",
      subject: o.subject,
      reason: reasonOf(o.reason, secrets),
      log_tail: tailOf(lines, secrets),
      url: `${this.deps.publicUrl}/api/v1/tools/${tool}/jobs/${job}`,
      job,
      run_id: runId,
      status: o.status,
      count: o.count,
    };
  }

  /** Sends on each channel that has not taken this notification yet; rejects if one failed. */
  private async deliver(n: Notification, key: string): Promise<void> {
    const { store, channels } = this.deps;
    const log = this.deps.logger.child({ tool: n.tool, kind: n.kind, key });
    const failures: unknown[] = [];
    for (const channel of channels) {
      const target = await channel.target(n.tool);
      const delivery = `${key}:${channel.name}`;
      if (!target || (await store.delivered(delivery))) continue;
      try {
        await target.send(n, key);
        await store.markDelivered(delivery);
        log.info({ channel: channel.name, ...target.fields }, "notification sent");
      } catch (error) {
        log.warn({ channel: channel.name, err: error }, "notification not sent; will retry");
        failures.push(error);
      }
    }
    if (failures.length > 0) throw failures[0];
  }
}
