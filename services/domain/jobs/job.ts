import { InputError } from "../../platform/errors.js";

export type JobType = "continuous" | "scheduled" | "one-off";

/** Where a definition came from: the live release's components config, or the API/CLI (`jobs run|load`). */
export type JobSource = "config" | "api";

/** Toolforge's limit on job names (RFC 1123 label, ≤52 characters so k8s suffixes still fit). */
export const MAX_JOB_NAME = 52;
/** Toolforge allows 0-5 retries. */
export const MAX_RETRY = 5;
/** Runs kept per job (each with its own log); older runs and their logs are deleted. */
export const KEPT_RUNS = 20;
/** Lines kept per run; the oldest are dropped first. */
export const KEPT_LINES_PER_RUN = 1000;

/** A job as the runner needs it: what to run, from which image, and when. */
export interface JobDefinition {
  readonly tool: string;
  readonly name: string;
  readonly type: JobType;
  readonly command: string;
  /** `<registry>/<repo>@sha256:…`: what runs. */
  readonly image: string;
  /**
   * What the user asked for: a release id pins that release's image; anything else (a Toolforge image
   * name such as `python3.11`, or nothing) follows the tool's live release.
   */
  readonly image_name: string | undefined;
  /** The release whose image runs. */
  readonly release_id: string;
  /** As written (`@daily`, `*\/5 * * * *`). */
  readonly schedule: string | undefined;
  /** The 5-field expression the runner uses: macros spread per tool and job. */
  readonly cron: string | undefined;
  readonly retry: number;
  readonly timeout_s: number | undefined;
  readonly memory_mb: number | undefined;
  /** CPU limit (`cpu` in jobs.yaml, `run.cpu` in the components config); none: the runner's default. */
  readonly cpus?: number | undefined;
  readonly source: JobSource;
  /**
   * `cluster`: Kubernetes runs it (a config worker's Deployment, a config CronJob, applied by the
   * deployer). The runner never starts it; the cluster follower records its pods as runs.
   */
  readonly runs_on?: "cluster" | undefined;
  /** Bumped by every change and by `jobs restart`: the runner restarts a continuous job when it moves. */
  readonly revision: number;
  /** Toolforge keys Slipway accepts but does not act on (emails, filelog, mount…), kept for `dump`. */
  readonly extra: Readonly<Record<string, unknown>>;
  readonly created_at: string;
  readonly updated_at: string;
}

export type JobState =
  "pending" | "running" | "restarting" | "waiting" | "succeeded" | "failed" | "defined" | "stopped";

/** What the runner last saw; shown by `jobs show`. */
export interface JobStatus {
  readonly state: JobState;
  /** Continuous jobs: how often the process was started again after it ended. */
  readonly restarts: number;
  readonly last_exit_code: number | null;
  readonly last_run_id: string | null;
  readonly last_started_at: string | null;
  readonly last_finished_at: string | null;
  /** Scheduled jobs: the next time the schedule fires. */
  readonly next_run_at: string | null;
  readonly message: string | null;
}

export const INITIAL_STATUS: JobStatus = {
  state: "defined",
  restarts: 0,
  last_exit_code: null,
  last_run_id: null,
  last_started_at: null,
  last_finished_at: null,
  next_run_at: null,
  message: null,
};

export type RunTrigger = "schedule" | "manual" | "continuous" | "retry";
export type RunStatus = "running" | "succeeded" | "failed" | "timeout" | "skipped" | "stopped" | "lost";

/** One process of a job: each attempt, restart and scheduled firing is a run with its own log. */
export interface JobRun {
  readonly id: string;
  readonly tool: string;
  readonly job: string;
  readonly trigger: RunTrigger;
  /** 1 for the first attempt; retries count up. */
  readonly attempt: number;
  /** The id of the first attempt: retries share it, so `jobs run --wait` can follow them all. */
  readonly request_id: string;
  readonly status: RunStatus;
  readonly exit_code: number | null;
  readonly reason: string | null;
  readonly image: string;
  readonly started_at: string;
  readonly finished_at: string | null;
}

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function validateJobName(name: string): string {
  if (typeof name !== "string" || !NAME.test(name) || name.length > MAX_JOB_NAME) {
    throw new InputError(
      `invalid job name "${String(name).slice(0, 80)}": use 1-${MAX_JOB_NAME} lowercase letters, digits and '-', starting and ending with a letter or digit`,
      { details: { field: "name" } },
    );
  }
  return name;
}

/** `512Mi`, `1Gi`, `256M` → megabytes; undefined for nothing given. */
export function memoryMb(text: string | undefined): number | undefined {
  if (text === undefined || text === "") return undefined;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*(Mi|M|Gi|G)?$/.exec(String(text).trim());
  if (!m) {
    throw new InputError(`invalid memory "${String(text).slice(0, 40)}": use e.g. 512Mi or 1Gi`, {
      details: { field: "mem" },
    });
  }
  const n = Number(m[1]);
  const unit = m[2] ?? "Mi";
  return Math.max(16, Math.round(unit.startsWith("G") ? n * 1024 : n));
}
