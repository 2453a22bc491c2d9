/**
 * Every metric Slipway exports at `/metrics`, in one place: docs/operating.md lists the same. Counters and
 * histograms are kept in Redis (adapters/metrics/redis-metrics.ts), so every API process shows the whole
 * installation's counts whatever role recorded them; gauges are measured when Prometheus scrapes.
 */
export type MetricKind = "counter" | "histogram" | "gauge";

export interface MetricDef {
  readonly name: string;
  readonly kind: MetricKind;
  readonly help: string;
  readonly labels: readonly string[];
  /** Upper bounds in seconds, for histograms. */
  readonly buckets?: readonly number[];
}

const BUILD_S = [10, 30, 60, 120, 300, 600, 900, 1800];
const WAIT_S = [1, 5, 15, 30, 60, 120, 300, 600, 1800];

export const METRICS = {
  webhookDeliveries: {
    name: "slipway_webhook_deliveries_total",
    kind: "counter",
    help: "Webhook deliveries by hook (gitlab, redeploy, a forge's route) and outcome (accepted, not_built, unauthorized, rate_limited, rejected, error).",
    labels: ["hook", "outcome"],
  },
  builds: {
    name: "slipway_builds_total",
    kind: "counter",
    help: "Builds that ended, by outcome (success, failure, cancelled, superseded).",
    labels: ["outcome"],
  },
  buildDuration: {
    name: "slipway_build_duration_seconds",
    kind: "histogram",
    help: "From a build's start on a builder to its end (its deploy included), by outcome.",
    labels: ["outcome"],
    buckets: BUILD_S,
  },
  buildPhaseDuration: {
    name: "slipway_build_phase_duration_seconds",
    kind: "histogram",
    help: "Time a build spent in each phase (fetch, config, detect, restore, build, export), by phase.",
    labels: ["phase"],
    buckets: [1, 5, 10, 30, 60, 120, 300, 600],
  },
  queueWait: {
    name: "slipway_build_queue_wait_seconds",
    kind: "histogram",
    help: "From a push accepted to its build starting on a builder.",
    labels: [],
    buckets: WAIT_S,
  },
  pushToLive: {
    name: "slipway_push_to_live_seconds",
    kind: "histogram",
    help: "From a push accepted to its release serving (successful builds only).",
    labels: [],
    buckets: [15, 30, 60, 120, 300, 600, 900, 1800],
  },
  deploys: {
    name: "slipway_deploys_total",
    kind: "counter",
    help: "Releases that ended, by kind (deploy of a build, rollback, restart) and outcome (live, failed, superseded).",
    labels: ["kind", "outcome"],
  },
  jobRuns: {
    name: "slipway_job_runs_total",
    kind: "counter",
    help: "Job runs that ended, by tool, job and outcome (succeeded, failed, timeout, skipped, stopped, lost).",
    labels: ["tool", "job", "outcome"],
  },
  queueJobs: {
    name: "slipway_queue_jobs",
    kind: "gauge",
    help: "Queue jobs (build, deploy) by state (waiting, active, delayed), read from BullMQ at scrape time.",
    labels: ["queue", "state"],
  },
  up: {
    name: "slipway_up",
    kind: "gauge",
    help: "1 when a dependency answered a probe at scrape time (redis, registry, runtime), else 0.",
    labels: ["component"],
  },
  toolCpu: {
    name: "slipway_tool_cpu_percent",
    kind: "gauge",
    help: "CPU use of a tool's running containers (100 = one core), by tool, kind (web, job) and process or job name; local runtime (podman stats) only.",
    labels: ["tool", "kind", "process"],
  },
  toolMemory: {
    name: "slipway_tool_memory_bytes",
    kind: "gauge",
    help: "Memory use of a tool's running containers, by tool, kind (web, job) and process or job name; local runtime (podman stats) only.",
    labels: ["tool", "kind", "process"],
  },
} as const satisfies Record<string, MetricDef>;

export type Labels = Readonly<Record<string, string>>;

/** One change to a stored metric: a counter's increment or a histogram's observation. */
export type MetricOp =
  | { readonly kind: "count"; readonly metric: MetricDef; readonly labels: Labels; readonly by?: number }
  | { readonly kind: "observe"; readonly metric: MetricDef; readonly labels: Labels; readonly value: number };
