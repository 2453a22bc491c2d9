import { setTimeout as sleep } from "node:timers/promises";
import { ConflictError, InputError, NotFoundError } from "../../platform/errors.js";
import { newId } from "../../platform/ids.js";
import type { Logger } from "../../platform/logger.js";
import type { JobsStore } from "../../ports/jobs-store.js";
import type { StateStore } from "../../ports/store.js";
import { cpus, type Component, type ComponentsConfig } from "../config/index.js";
import { webComponent } from "../pipeline/app-config.js";
import type { Release } from "../releases/release.js";
import { expandSchedule } from "./cron.js";
import {
  INITIAL_STATUS,
  memoryMb,
  validateJobName,
  type JobDefinition,
  type JobRun,
  type JobStatus,
  type JobType,
} from "./job.js";
import { jobTypeOf, type JobInput } from "./jobs-yaml.js";

export interface JobView {
  readonly job: JobDefinition;
  readonly status: JobStatus;
}

export interface RunLog {
  readonly run: JobRun;
  readonly lines: string[];
}

export interface LoadResult {
  readonly created: string[];
  readonly updated: string[];
  readonly deleted: string[];
  readonly unchanged: string[];
}

/** What a definition's behaviour depends on: equal specs mean "already up to date" (no restart). */
type Spec = Pick<
  JobDefinition,
  | "type"
  | "command"
  | "image"
  | "image_name"
  | "release_id"
  | "schedule"
  | "cron"
  | "retry"
  | "timeout_s"
  | "memory_mb"
  | "cpus"
  | "extra"
  | "runs_on"
>;

/** A run that nothing more follows: the caller of `--wait` can stop waiting. */
export function isFinalRun(run: JobRun, retry: number): boolean {
  if (run.status === "running") return false;
  if (run.status === "failed") return run.attempt > retry;
  return true;
}

/**
 * Job definitions and their lifecycle as the API sees them: create, run now, restart, delete, load
 * and dump, and the jobs a live release's components config declares. The runner (another process,
 * maybe) acts on what this writes.
 */
export class JobService {
  constructor(
    private readonly deps: {
      readonly jobs: JobsStore;
      readonly store: Pick<StateStore, "getRoute" | "getRelease">;
      /** The image reference a release runs (by digest). */
      readonly imageOf: (release: Release) => string;
      readonly logger: Logger;
    },
  ) {}

  /**
   * By name; with `page`, at most `limit` jobs named after `after`. A tool's definitions are one read;
   * the statuses (a read each) are read for the page only.
   */
  async list(tool: string, page?: { after?: string | undefined; limit: number }): Promise<JobView[]> {
    let defs = await this.deps.jobs.listJobs(tool);
    if (page) {
      // The order listJobs answers in, so the page starts where the cursor's name would be.
      const after = page.after;
      defs = defs.filter((j) => after === undefined || j.name.localeCompare(after) > 0).slice(0, page.limit);
    }
    return Promise.all(defs.map(async (job) => ({ job, status: await this.statusOf(job) })));
  }

  async show(tool: string, name: string): Promise<JobView & { runs: JobRun[] }> {
    const job = await this.get(tool, name);
    const [status, runs] = await Promise.all([this.statusOf(job), this.deps.jobs.listRuns(tool, name)]);
    return { job, status, runs };
  }

  async get(tool: string, name: string): Promise<JobDefinition> {
    const job = await this.deps.jobs.getJob(tool, validateJobName(name));
    if (!job) throw new NotFoundError(`tool ${tool} has no job "${name}"`);
    return job;
  }

  /**
   * `jobs run`: with a command, defines a new job (one-off jobs also start a run); without one, runs an
   * existing job now. Returns the run id when a run was requested.
   */
  async run(
    tool: string,
    input: JobInput | { readonly name: string },
  ): Promise<{ job: JobDefinition; run_id: string | null }> {
    const name = validateJobName(input.name);
    const existing = await this.deps.jobs.getJob(tool, name);
    if (!("command" in input)) {
      if (!existing)
        throw new NotFoundError(`tool ${tool} has no job "${name}": give --command to create it`);
      return { job: existing, run_id: await this.requestRun(existing) };
    }
    if (existing) {
      throw new ConflictError(
        `tool ${tool} already has a job "${name}" (${existing.type}); delete it first, or run it again without --command`,
      );
    }
    const job = await this.definitionFromInput(tool, input, undefined);
    await this.deps.jobs.putJob(job);
    await this.deps.jobs.updateStatus(tool, name, {
      ...INITIAL_STATUS,
      state: job.type === "one-off" ? "pending" : "defined",
    });
    const run_id = job.type === "one-off" ? await this.requestRun(job) : null;
    return { job, run_id };
  }

  /** `jobs restart`: a continuous job's process is replaced; any other job runs again now. */
  async restart(tool: string, name: string): Promise<{ job: JobDefinition; run_id: string | null }> {
    const job = await this.get(tool, name);
    refuseOnCluster(job, "restart");
    if (job.type !== "continuous") return { job, run_id: await this.requestRun(job) };
    const next = { ...job, revision: job.revision + 1, updated_at: new Date().toISOString() };
    await this.deps.jobs.putJob(next);
    return { job: next, run_id: null };
  }

  /** Stops the job (the runner kills its process within a tick) and forgets it, runs and logs included. */
  async delete(tool: string, name: string): Promise<JobDefinition> {
    const job = await this.get(tool, name);
    refuseOnCluster(job, "delete");
    await this.deps.jobs.deleteJob(tool, name);
    return job;
  }

  /**
   * `jobs load`: the API-defined jobs become exactly the file's. Jobs whose spec did not change keep
   * running untouched; one-off jobs that are new or changed run once. Jobs from the components config
   * are not the file's business and stay.
   */
  async load(tool: string, inputs: readonly JobInput[]): Promise<LoadResult> {
    const result: LoadResult = { created: [], updated: [], deleted: [], unchanged: [] };
    const existing = new Map((await this.deps.jobs.listJobs(tool)).map((j) => [j.name, j]));
    // Resolve every job before changing any, so a bad item leaves everything as it was.
    const desired = await Promise.all(
      inputs.map((input) => this.definitionFromInput(tool, input, existing.get(input.name))),
    );
    for (const job of desired) {
      const before = existing.get(job.name);
      if (before?.source === "config") {
        throw new ConflictError(
          `job ${job.name} is defined by the components config of the live release; rename it in jobs.yaml`,
        );
      }
    }
    for (const job of desired) {
      const before = existing.get(job.name);
      if (before && sameSpec(before, job)) {
        result.unchanged.push(job.name);
        continue;
      }
      await this.deps.jobs.putJob(job);
      (before ? result.updated : result.created).push(job.name);
      if (job.type === "one-off") await this.requestRun(job);
    }
    const keep = new Set(desired.map((j) => j.name));
    for (const job of existing.values()) {
      if (job.source === "api" && !keep.has(job.name)) {
        await this.deps.jobs.deleteJob(tool, job.name);
        result.deleted.push(job.name);
      }
    }
    return result;
  }

  /** The jobs `jobs dump` prints: those defined through the API (config jobs live in slipway.yaml). */
  async dumpable(tool: string): Promise<JobDefinition[]> {
    return (await this.deps.jobs.listJobs(tool)).filter((j) => j.source === "api");
  }

  /**
   * After a release goes live: the jobs of its components config (every component but the published
   * webservice) are created or updated to its image, those no longer in the config are removed, and
   * API jobs that follow the live release move to its image. A changed definition restarts a
   * continuous job; an unchanged one keeps running.
   */
  /**
   * `onCluster`: component types the cluster runs itself (on Kubernetes, continuous components are
   * Deployments and scheduled ones CronJobs, applied by the deployer). Their jobs are recorded with
   * `runs_on: "cluster"`, so `jobs list|show|logs` show them while the runner never starts them
   * (nothing runs twice); the cluster follower records their pods as runs.
   */
  async syncRelease(
    release: Release,
    options: { readonly onCluster?: readonly JobType[] } = {},
  ): Promise<LoadResult> {
    const { jobs } = this.deps;
    const tool = release.tool;
    const result: LoadResult = { created: [], updated: [], deleted: [], unchanged: [] };
    const existing = new Map((await jobs.listJobs(tool)).map((j) => [j.name, j]));
    const image = this.deps.imageOf(release);
    const components = release.config ? jobComponents(release.config) : [];
    const now = new Date().toISOString();
    for (const c of components) {
      const before = existing.get(c.name);
      const type: JobType = c.component_type;
      const spec: Spec = {
        type,
        command: c.run.command,
        image,
        image_name: undefined,
        release_id: release.id,
        schedule: type === "scheduled" ? c.run.schedule : undefined,
        cron:
          type === "scheduled" && c.run.schedule ? expandSchedule(c.run.schedule, tool, c.name) : undefined,
        retry: c.run.retry ?? 0,
        timeout_s: type === "continuous" ? undefined : c.run.timeout,
        memory_mb: memoryMb(c.run.memory),
        cpus: c.run.cpu_set ? cpus(c.run.cpu) : undefined,
        // Toolforge's per-job mail policy, which the notifier reads from `extra` as for jobs.yaml jobs.
        extra: c.run.emails === "none" ? {} : { emails: c.run.emails },
        runs_on: options.onCluster?.includes(type) ? "cluster" : undefined,
      };
      if (before && before.source === "config" && sameSpec(before, spec)) {
        result.unchanged.push(c.name);
        continue;
      }
      if (before?.source === "api") {
        this.deps.logger.warn(
          { tool, job: c.name },
          "the components config replaces an API-defined job of the same name",
        );
      }
      await jobs.putJob({
        ...spec,
        tool,
        name: c.name,
        source: "config",
        revision: (before?.revision ?? 0) + 1,
        created_at: before?.created_at ?? now,
        updated_at: now,
      });
      (before ? result.updated : result.created).push(c.name);
    }
    const declared = new Set(components.map((c) => c.name));
    for (const job of existing.values()) {
      if (job.source === "config" && !declared.has(job.name)) {
        await jobs.deleteJob(tool, job.name);
        result.deleted.push(job.name);
      } else if (job.source === "api" && job.image_name !== job.release_id && job.release_id !== release.id) {
        await jobs.putJob({
          ...job,
          image,
          release_id: release.id,
          revision: job.revision + 1,
          updated_at: now,
        });
        result.updated.push(job.name);
      }
    }
    return result;
  }

  /** Runs newest last, each with its kept lines; one run with `runId`. */
  async logs(tool: string, name: string, runId?: string): Promise<RunLog[]> {
    const job = await this.get(tool, name);
    const runs = runId
      ? [await this.deps.jobs.getRun(tool, job.name, runId)].filter((r): r is JobRun => r !== undefined)
      : (await this.deps.jobs.listRuns(tool, job.name)).reverse();
    if (runId && runs.length === 0) throw new NotFoundError(`job ${name} has no run ${runId}`);
    return Promise.all(
      runs.map(async (run) => ({
        run,
        lines: (await this.deps.jobs.readLog(tool, job.name, run.id)).map((l) => l.line),
      })),
    );
  }

  /**
   * Waits until the run requested as `runId` and its retries are over; returns every attempt with its
   * log. `undefined` when `timeoutMs` passed first.
   */
  async waitForRun(tool: string, name: string, runId: string, timeoutMs: number, signal?: AbortSignal) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !signal?.aborted) {
      const job = await this.get(tool, name);
      const runs = (await this.deps.jobs.listRuns(tool, name)).filter(
        (r) => r.id === runId || r.request_id === runId,
      );
      const last = runs[0];
      if (last && isFinalRun(last, job.retry)) {
        const attempts = runs.reverse();
        const logs = await Promise.all(
          attempts.map(async (run) => ({
            run,
            lines: (await this.deps.jobs.readLog(tool, name, run.id)).map((l) => l.line),
          })),
        );
        return { final: last, runs: logs };
      }
      await sleep(500);
    }
    return undefined;
  }

  private async requestRun(job: JobDefinition): Promise<string> {
    refuseOnCluster(job, "run");
    const status = await this.deps.jobs.getStatus(job.tool, job.name);
    if (status?.state === "running" && job.type !== "continuous") {
      throw new ConflictError(`job ${job.name} is running; wait for it to finish (jobs show ${job.name})`);
    }
    if (job.type === "continuous") {
      throw new ConflictError(`job ${job.name} is continuous and runs already; use jobs restart`);
    }
    const run_id = newId();
    await this.deps.jobs.requestRun({ tool: job.tool, job: job.name, run_id });
    await this.deps.jobs.updateStatus(job.tool, job.name, { state: "pending" });
    return run_id;
  }

  private async statusOf(job: JobDefinition): Promise<JobStatus> {
    return (await this.deps.jobs.getStatus(job.tool, job.name)) ?? INITIAL_STATUS;
  }

  private async definitionFromInput(
    tool: string,
    input: JobInput,
    before: JobDefinition | undefined,
  ): Promise<JobDefinition> {
    const type = jobTypeOf(input);
    const release = await this.releaseFor(tool, input.image);
    const now = new Date().toISOString();
    const spec: Spec = {
      type,
      command: input.command,
      image: this.deps.imageOf(release),
      image_name: input.image,
      release_id: release.id,
      schedule: input.schedule,
      cron: input.schedule !== undefined ? expandSchedule(input.schedule, tool, input.name) : undefined,
      retry: input.retry,
      timeout_s: input.timeout,
      memory_mb: memoryMb(input.mem),
      // Toolforge's `cpu` stays in `extra` too, so `dump` gives back what was loaded.
      cpus: cpuOf(input.extra.cpu),
      extra: input.extra,
    };
    if (type === "continuous" && input.timeout !== undefined) {
      throw new InputError(
        `job ${input.name}: timeout applies to scheduled and one-off jobs, not continuous ones`,
      );
    }
    return {
      ...spec,
      tool,
      name: input.name,
      source: "api",
      revision: before && sameSpec(before, spec) ? before.revision : (before?.revision ?? 0) + 1,
      created_at: before?.created_at ?? now,
      updated_at: before && sameSpec(before, spec) ? before.updated_at : now,
    };
  }

  /** A release id pins that release; any other image name (Toolforge's `python3.11`…) means the live one. */
  private async releaseFor(tool: string, image: string | undefined): Promise<Release> {
    if (image !== undefined) {
      const pinned = await this.deps.store.getRelease(image);
      if (pinned && pinned.tool === tool) return pinned;
    }
    const route = await this.deps.store.getRoute(tool);
    const live = route ? await this.deps.store.getRelease(route.release_id) : undefined;
    if (!live) {
      throw new ConflictError(
        `tool ${tool} has no live release yet: jobs run the tool's own image, so push and deploy it first`,
      );
    }
    return live;
  }
}

/** The components a release runs as jobs: all but its webservice (which the deployer runs). */
export function jobComponents(config: ComponentsConfig): Component[] {
  const web = webComponent(config);
  return Object.values(config.components).filter((c) => c.name !== web?.name);
}

function sameSpec(a: Spec, b: Spec): boolean {
  return (
    a.type === b.type &&
    a.command === b.command &&
    a.image === b.image &&
    // A new release of the same image (an env var change) restarts jobs too, so they see the change.
    a.release_id === b.release_id &&
    a.image_name === b.image_name &&
    a.schedule === b.schedule &&
    a.cron === b.cron &&
    a.retry === b.retry &&
    a.timeout_s === b.timeout_s &&
    a.memory_mb === b.memory_mb &&
    a.cpus === b.cpus &&
    a.runs_on === b.runs_on &&
    JSON.stringify(a.extra) === JSON.stringify(b.extra)
  );
}

/**
 * A job the cluster runs (a config worker's Deployment, a config CronJob) is the live release's: Slipway
 * neither deletes, restarts nor fires it, so the answer says what does.
 */
function refuseOnCluster(job: JobDefinition, what: "run" | "restart" | "delete"): void {
  if (job.runs_on !== "cluster") return;
  const object = job.type === "continuous" ? "Deployment" : "CronJob";
  const how =
    what === "delete"
      ? "remove the component from slipway.yaml and push"
      : what === "restart"
        ? "a new release (push, an env var change, or slipway rollback) replaces its pods"
        : "it runs on its schedule; for a run now, define a one-off job";
  throw new ConflictError(
    `job ${job.name} runs on the cluster as a ${object} of the live release's components config, so Slipway does not ${what} it: ${how}`,
  );
}

/** jobs.yaml's `cpu` (a scalar: `0.5`, `"500m"`) as CPUs; a boolean is no quantity. */
function cpuOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" && typeof value !== "number") {
    throw new InputError(`cpu: expected a CPU quantity such as "500m" or 0.5, got ${typeof value}`, {
      details: { field: "cpu" },
    });
  }
  return cpus(value);
}
