import type { Build } from "../../domain/builds/build.js";
import type { Release } from "../../domain/releases/release.js";
import type { StateEvent } from "../../ports/state-events.js";
import { METRICS, type MetricOp } from "./catalogue.js";

/** The records an event names, looked up when its metrics need their times or trigger. */
export interface EventRecords {
  getBuild(id: string): Promise<Build | undefined>;
  getRelease(id: string): Promise<Release | undefined>;
}

const BUILD_ENDS: ReadonlySet<string> = new Set(["success", "failure", "cancelled", "superseded"]);
const RELEASE_ENDS: ReadonlySet<string> = new Set(["live", "failed", "superseded"]);

/**
 * What one state event changes in the metrics. A build starting observes its queue wait; a build ending
 * counts its outcome and observes its duration and, when it went live, push→live; a release ending
 * counts a deploy, rollback or restart; a job run ending counts its outcome. A record deleted since
 * (its tool was deleted) still counts; only its durations are lost.
 */
export async function metricsOfEvent(event: StateEvent, records: EventRecords): Promise<MetricOp[]> {
  switch (event.kind) {
    case "build":
      return buildOps(event.status, await records.getBuild(event.id));
    case "release": {
      if (!RELEASE_ENDS.has(event.status)) return [];
      const release = await records.getRelease(event.id);
      return [
        {
          kind: "count",
          metric: METRICS.deploys,
          labels: { kind: releaseKind(release), outcome: event.status },
        },
      ];
    }
    case "job":
      if (event.status === "running") return [];
      return [
        {
          kind: "count",
          metric: METRICS.jobRuns,
          labels: { tool: event.tool, job: event.job, outcome: event.status },
        },
      ];
  }
}

function buildOps(status: string, build: Build | undefined): MetricOp[] {
  if (status === "running") {
    const wait = seconds(build?.created_at, build?.started_at);
    return wait === undefined
      ? []
      : [{ kind: "observe", metric: METRICS.queueWait, labels: {}, value: wait }];
  }
  if (!BUILD_ENDS.has(status)) return [];
  const ops: MetricOp[] = [{ kind: "count", metric: METRICS.builds, labels: { outcome: status } }];
  const took = seconds(build?.started_at, build?.finished_at);
  if (took !== undefined)
    ops.push({ kind: "observe", metric: METRICS.buildDuration, labels: { outcome: status }, value: took });
  const live = status === "success" ? seconds(build?.created_at, build?.finished_at) : undefined;
  if (live !== undefined) ops.push({ kind: "observe", metric: METRICS.pushToLive, labels: {}, value: live });
  return ops;
}

/** `rollback`, `restart` (an env var change or `webservice restart`) or `deploy` (a build's release). */
export function releaseKind(release: Release | undefined): string {
  const kind = release?.trigger.kind;
  if (kind === undefined) return "unknown";
  if (kind === "rollback") return "rollback";
  return kind === "envvars" || kind === "restart" ? "restart" : "deploy";
}

/** The phase timings a build's PhaseClock gives (milliseconds; `total` aside) as observations. */
export function phaseOps(timings: Readonly<Record<string, number>>): MetricOp[] {
  return Object.entries(timings)
    .filter(([phase]) => phase !== "total")
    .map(([phase, ms]) => ({
      kind: "observe",
      metric: METRICS.buildPhaseDuration,
      labels: { phase },
      value: ms / 1000,
    }));
}

function seconds(from: string | undefined, to: string | undefined): number | undefined {
  if (from === undefined || to === undefined) return undefined;
  const s = (Date.parse(to) - Date.parse(from)) / 1000;
  return Number.isFinite(s) && s >= 0 ? s : undefined;
}
