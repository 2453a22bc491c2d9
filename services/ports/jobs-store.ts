import type { JobDefinition, JobRun, JobStatus } from "../domain/jobs/job.js";
import type { LogLine } from "./logs.js";

/** A request to run a job now (`jobs run` of a one-off job), picked up by the runner. */
export interface RunRequest {
  readonly tool: string;
  readonly job: string;
  /** The run id the runner gives the first attempt, so `--wait` knows what to wait for. */
  readonly run_id: string;
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
   * Claims `key` for `owner` for `ttlMs` (renewing the claim if `owner` already holds it): with several
   * deployer processes, one of them runs a continuous job or fires a schedule slot.
   */
  claim(key: string, owner: string, ttlMs: number): Promise<boolean>;
  release(key: string, owner: string): Promise<void>;
}
