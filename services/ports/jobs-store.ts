import type { JobDefinition, JobRun, JobStatus } from "../domain/jobs/job.js";
import type { LogLine } from "./logs.js";

/** A request to run a job now (`jobs run` of a one-off job), picked up by the runner. */
export interface RunRequest {
  readonly tool: string;
  readonly job: string;
  /** The run id the runner gives the first attempt, so `--wait` knows what to wait for. */
  readonly run_id: string;
}

/** A scheduled job's place in the schedule. */
export interface ScheduleEntry {
  readonly tool: string;
  readonly name: string;
  /** The fire time it waits for; undefined: not computed yet (new job, or its cron changed). */
  readonly at: Date | undefined;
}

/**
 * Job definitions, their status, their runs (bounded) and each run's log (bounded). The API writes
 * definitions and run requests; the runner (deployer role) reads them and writes status, runs and logs,
 * so the two can live in different processes.
 */
export interface JobsStore {
  putJob(job: JobDefinition): Promise<void>;
  getJob(tool: string, name: string): Promise<JobDefinition | undefined>;
  listJobs(tool: string): Promise<JobDefinition[]>;
  /** Every tool's jobs: what the runner reconciles. */
  listAllJobs(): Promise<JobDefinition[]>;
  /** Removes the definition, its status, runs and logs. */
  deleteJob(tool: string, name: string): Promise<void>;

  /**
   * The continuous jobs this profile's runner supervises (not those `runs_on: cluster`): an index kept
   * with every put and delete, so a tick does not read the scheduled and one-off jobs of every tool.
   */
  listContinuousJobs(): Promise<JobDefinition[]>;
  /**
   * Changes whenever the continuous jobs change (one added, changed or deleted): a runner reads
   * listContinuousJobs again only then, so an idle tick does not read every continuous definition.
   */
  continuousVersion(): Promise<string>;
  /**
   * Scheduled jobs (not `runs_on: cluster`) whose next fire time is at or before `now`, earliest first,
   * at most `limit`. The schedule is kept with every put and delete: a new job, or one whose cron
   * changed, is due at once with `at` undefined (its next time is not known yet).
   */
  dueSchedules(now: Date, limit: number): Promise<ScheduleEntry[]>;
  /**
   * Moves a job's next fire time from `from` to `to`, only if it is still `from` and the job's cron is
   * still `cron`: of several runners that saw the same due time, exactly one moves it (and fires it).
   */
  moveSchedule(entry: ScheduleEntry, cron: string, to: Date): Promise<boolean>;
  /** Rebuilds the continuous and schedule indexes of every job (definitions stored before they existed). */
  indexAllJobs(): Promise<void>;

  getStatus(tool: string, name: string): Promise<JobStatus | undefined>;
  /** Merges into the stored status (created with defaults when absent); returns the result. */
  updateStatus(tool: string, name: string, patch: Partial<JobStatus>): Promise<JobStatus>;

  /** Adds a run as the newest; runs beyond the kept number are deleted with their logs. */
  addRun(run: JobRun): Promise<void>;
  updateRun(tool: string, job: string, id: string, patch: Partial<JobRun>): Promise<void>;
  getRun(tool: string, job: string, id: string): Promise<JobRun | undefined>;
  /** Newest first. */
  listRuns(tool: string, job: string, limit?: number): Promise<JobRun[]>;

  appendLog(tool: string, job: string, runId: string, lines: readonly string[]): Promise<void>;
  readLog(tool: string, job: string, runId: string, after?: string): Promise<LogLine[]>;

  requestRun(request: RunRequest): Promise<void>;
  /** Removes and returns every pending request. */
  takeRunRequests(): Promise<RunRequest[]>;

  /**
   * Claims each key for `owner` for `ttlMs` (renewing the claims `owner` already holds), in one round
   * trip; which of them `owner` holds now. With several deployer processes, one of them runs a
   * continuous job.
   */
  claimAll(keys: readonly string[], owner: string, ttlMs: number): Promise<boolean[]>;
  release(key: string, owner: string): Promise<void>;
}
