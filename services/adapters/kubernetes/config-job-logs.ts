import { CoreV1Api, Log, type KubeConfig, type V1Pod } from "@kubernetes/client-node";
import type { JobDefinition, JobRun, RunStatus } from "../../domain/jobs/job.js";
import { LABELS, MANAGED_BY, namespaceName } from "../../domain/kubernetes/index.js";
import type { Logger } from "../../platform/logger.js";
import type { JobsStore } from "../../ports/jobs-store.js";
import type { StateStore } from "../../ports/store.js";
import { LogCursor, LookLoop, followLog, type LogFollow } from "./log-stream.js";

export interface ConfigJobFollowerOptions {
  /** Between two looks at the pods of config workers and CronJobs; default 5 s. */
  readonly pollMs?: number | undefined;
}

/** The pod-level `app.kubernetes.io/component` of a config worker's Deployment and of a CronJob. */
const CLUSTER_KINDS = new Set(["worker", "scheduled"]);

interface Followed {
  readonly tool: string;
  readonly job: string;
  readonly pod: string;
  readonly container: string;
  readonly cursor: LogCursor;
  follow: LogFollow | undefined;
  /** Appends one batch after the other, so the run's log is in the order it came. */
  writing: Promise<void>;
  /** Seen in the last look; a pod that is gone is forgotten. */
  seen: boolean;
  /** The container ended for good: the read of the rest of its log has been started. */
  finalRead: boolean;
  /** The run is finished in the store: nothing more to do for this pod. */
  done: boolean;
  /** The last `restartCount` written to the job's status. */
  restarts: number;
}

/**
 * Keeps the runs of the jobs the cluster runs (`runs_on: "cluster"`: a config's workers as
 * Deployments, its scheduled components as CronJobs) in the {@link JobsStore}, as the runner does for
 * its own: each pod is one run, with the pod's name as run id (stable across looks and restarts of
 * Slipway), its output followed into the run's log, and the exit code of its terminated container.
 * Every `pollMs` it lists, per tool with a live route and cluster jobs, the tool's pods and matches them
 * to jobs by `slipway.dev/component`. The store keeps the last runs only (`KEPT_RUNS`), as on podman.
 */
export class KubernetesConfigJobFollower {
  private readonly core: CoreV1Api;
  private readonly log: Log;
  private readonly followed = new Map<string, Followed>();
  private readonly loop: LookLoop;

  constructor(
    kubeConfig: KubeConfig,
    private readonly deps: {
      readonly store: Pick<StateStore, "listTools" | "getRoute">;
      readonly jobs: JobsStore;
      readonly logger: Logger;
      readonly options?: ConfigJobFollowerOptions | undefined;
    },
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.log = new Log(kubeConfig);
    this.loop = new LookLoop(
      () => this.look(),
      deps.options?.pollMs ?? 5000,
      (e) => deps.logger.warn({ err: e }, "could not look for job pods"),
    );
  }

  start(): void {
    this.loop.start();
  }

  /** Stops following (the pods keep running; their runs stay `running` until a next follower looks). */
  async close(): Promise<void> {
    await this.loop.stop();
    for (const f of this.followed.values()) f.follow?.stop();
    await Promise.all([...this.followed.values()].map((f) => f.writing));
    this.followed.clear();
  }

  /** One look: records new pods as runs, follows their output, finishes the runs of ended or gone pods. */
  async look(): Promise<void> {
    for (const f of this.followed.values()) f.seen = false;
    for (const tool of await this.deps.store.listTools()) {
      if (!(await this.deps.store.getRoute(tool.name))) continue;
      const defs = new Map(
        (await this.deps.jobs.listJobs(tool.name))
          .filter((j) => j.runs_on === "cluster")
          .map((j) => [j.name, j]),
      );
      if (defs.size === 0) continue;
      const namespace = namespaceName(tool.name);
      let pods: V1Pod[];
      try {
        pods = (
          await this.core.listNamespacedPod({
            namespace,
            labelSelector: `${LABELS.managedBy}=${MANAGED_BY},${LABELS.tool}=${tool.name}`,
          })
        ).items;
      } catch (error) {
        this.deps.logger.warn({ tool: tool.name, err: error }, "could not list job pods");
        // Not knowing which pods exist is no reason to end their runs.
        for (const f of this.followed.values()) if (f.tool === tool.name) f.seen = true;
        continue;
      }
      const present = new Set<string>();
      for (const pod of pods) {
        const labels = pod.metadata?.labels ?? {};
        const def = defs.get(labels[LABELS.workload] ?? "");
        if (!def || !CLUSTER_KINDS.has(labels[LABELS.component] ?? "") || !pod.metadata?.name) continue;
        present.add(`${def.name}/${pod.metadata.name}`);
        await this.recordPod(namespace, def, pod);
      }
      // Runs whose pod went before it ended (a rollout replaced a worker, an eviction), also those
      // left running by an earlier Slipway.
      for (const def of defs.values()) {
        for (const run of await this.deps.jobs.listRuns(tool.name, def.name)) {
          if (run.status !== "running" || present.has(`${def.name}/${run.id}`)) continue;
          const f = this.followed.get(`${tool.name}/${def.name}/${run.id}`);
          f?.follow?.stop();
          await f?.writing;
          await this.finish(def, run.id, "stopped", null, "the pod was deleted before it ended");
          if (f) f.done = true;
        }
      }
    }
    for (const [key, f] of this.followed) {
      if (f.seen) continue;
      f.follow?.stop();
      this.followed.delete(key);
    }
  }

  private async recordPod(namespace: string, def: JobDefinition, pod: V1Pod): Promise<void> {
    const { jobs } = this.deps;
    const name = pod.metadata!.name!;
    const spec = pod.spec?.containers[0];
    if (!spec) return;
    const cs = pod.status?.containerStatuses?.find((c) => c.name === spec.name);
    const state = cs?.state;
    const key = `${def.tool}/${def.name}/${name}`;
    let f = this.followed.get(key);
    if (!f) {
      const run = await jobs.getRun(def.tool, def.name, name);
      if (!run && !state?.running && !state?.terminated) {
        const waiting = state?.waiting;
        if (waiting?.reason) {
          await jobs.updateStatus(def.tool, def.name, {
            state: "pending",
            message: `pod ${name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`,
          });
        }
        return;
      }
      if (!run) {
        const started =
          state?.running?.startedAt ?? state?.terminated?.startedAt ?? pod.status?.startTime ?? new Date();
        const added: JobRun = {
          id: name,
          request_id: name,
          tool: def.tool,
          job: def.name,
          trigger: def.type === "continuous" ? "continuous" : "schedule",
          attempt: 1,
          status: "running",
          exit_code: null,
          reason: null,
          image: spec.image ?? def.image,
          started_at: new Date(started).toISOString(),
          finished_at: null,
        };
        await jobs.addRun(added);
        await jobs.updateStatus(def.tool, def.name, {
          state: "running",
          last_run_id: name,
          last_started_at: added.started_at,
          message: null,
        });
      }
      f = {
        tool: def.tool,
        job: def.name,
        pod: name,
        container: spec.name,
        // A run kept by an earlier Slipway goes on from now: what it printed meanwhile is not read
        // again (it would be kept twice), so lines of that gap are missing.
        cursor: LogCursor.from(run ? new Date().toISOString() : undefined),
        follow: undefined,
        writing: Promise.resolve(),
        seen: true,
        finalRead: false,
        done: run !== undefined && run.status !== "running",
        restarts: 0,
      };
      this.followed.set(key, f);
    }
    f.seen = true;
    if (f.done) return;
    if (cs && cs.restartCount !== f.restarts) {
      f.restarts = cs.restartCount;
      await jobs.updateStatus(def.tool, def.name, {
        restarts: cs.restartCount,
        last_exit_code: cs.lastState?.terminated?.exitCode ?? null,
      });
    }
    const phase = pod.status?.phase;
    const terminated = state?.terminated;
    if (terminated && (phase === "Succeeded" || phase === "Failed")) {
      if (!f.finalRead) {
        // The rest of the log, read once the container ended; the cursor drops what came before.
        f.follow?.stop();
        f.finalRead = true;
        f.follow = this.followPod(namespace, f);
        return;
      }
      if (!f.follow?.ended) return;
      await f.writing;
      const code = terminated.exitCode;
      await this.finish(
        def,
        name,
        code === 0 ? "succeeded" : "failed",
        code,
        code === 0 ? null : `exited with code ${code}`,
        terminated.finishedAt,
      );
      f.done = true;
      return;
    }
    if (state?.waiting?.reason) {
      await jobs.updateStatus(def.tool, def.name, {
        state: "restarting",
        message: `pod ${name}: ${state.waiting.reason}`,
      });
    }
    // A running container (again, after a restart in place): follow it unless a follow is open.
    if (state?.running && (!f.follow || f.follow.ended)) {
      f.follow = this.followPod(namespace, f);
      await jobs.updateStatus(def.tool, def.name, { state: "running", message: null });
    }
  }

  private followPod(namespace: string, f: Followed): LogFollow {
    const log = this.deps.logger.child({ tool: f.tool, job: f.job, pod: f.pod });
    return followLog(
      this.log,
      namespace,
      f.pod,
      f.container,
      f.cursor,
      (lines) => {
        f.writing = f.writing.then(() =>
          this.deps.jobs
            .appendLog(f.tool, f.job, f.pod, lines)
            .catch((e) => log.warn({ err: e }, "job output could not be kept")),
        );
      },
      log,
    );
  }

  private async finish(
    def: JobDefinition,
    runId: string,
    status: RunStatus,
    exitCode: number | null,
    reason: string | null,
    finishedAt?: Date | string,
  ): Promise<void> {
    const at = new Date(finishedAt ?? Date.now()).toISOString();
    await this.deps.jobs.updateRun(def.tool, def.name, runId, {
      status,
      exit_code: exitCode,
      reason,
      finished_at: at,
    });
    await this.deps.jobs.updateStatus(def.tool, def.name, {
      state: def.type === "scheduled" ? "waiting" : "restarting",
      last_exit_code: exitCode,
      last_finished_at: at,
      message: reason,
    });
    this.deps.logger.info(
      { tool: def.tool, job: def.name, runId, status, exitCode },
      "cluster job run ended",
    );
  }
}
