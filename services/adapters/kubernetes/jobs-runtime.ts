import { setTimeout as sleep } from "node:timers/promises";
import { Writable } from "node:stream";
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  Log,
  type CoreV1Event,
  type KubeConfig,
  type V1Pod,
} from "@kubernetes/client-node";
import type { JobExit, JobProcess, JobProcessSpec, JobsRuntime } from "../../ports/jobs-runtime.js";
import {
  RUN_LABELS,
  jobRunSecretName,
  namespaceName,
  renderJobRun,
  renderNamespace,
  runnerSelector,
  type ToolQuota,
} from "../../domain/kubernetes/index.js";
import type { Release } from "../../domain/releases/release.js";
import { PipelineError, TransientError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { KubernetesApplier } from "./applier.js";
import { QUOTA_GRACE_MS, kubeError } from "./applier.js";
import { creationFailureKind, creationFailureText } from "./rollout.js";
import { LogCursor, followLog, type LogFollow } from "./log-stream.js";

export interface KubernetesJobsRuntimeOptions {
  /** `slipway.dev/runner` of every object this runtime creates; `removeLeftovers` deletes only those. */
  readonly runner: string;
  /** A pod that has not started its container after this long fails the run with its waiting reason. */
  readonly startTimeoutS: number;
  readonly quota?: Partial<ToolQuota> | undefined;
  /** Whose pods may connect to a run's pod besides the tool's own (the namespace's NetworkPolicy). */
  readonly ingressNamespace?: string | undefined;
  /** Between two reads of the run's pod; default 1 s. */
  readonly pollMs?: number | undefined;
}

/** How long the last read of a finished run's log may take. */
const DRAIN_TIMEOUT_MS = 10_000;

function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && (error as ApiException<unknown>).code === 404;
}

interface Run {
  readonly namespace: string;
  readonly name: string;
  readonly container: string;
  readonly runId: string;
  readonly onLines: (lines: string[]) => void;
  readonly cursor: LogCursor;
  killed: boolean;
  wake: () => void;
  follow: (LogFollow & { readonly pod: string }) | undefined;
}

/**
 * The job runner's processes on a cluster: each run is a batch/v1 Job `<job>-<run id>` in
 * `tool-<tool>` (rendered by domain/kubernetes/job-run.ts), with its env in a Secret of its own. The
 * run's pod is polled; once its container has started, its log is followed (`follow=true`,
 * `timestamps=true`, reconnecting with `sinceTime` when the stream ends early), and once the container
 * has terminated the rest is read and the exit code returned. Then the Job (with its pods) and the
 * Secret are deleted: the run's log in Slipway's store outlives them, and finished Jobs would count
 * against the namespace's Job quota. A pod whose container has not started after `startTimeoutS`
 * (ImagePullBackOff, an unschedulable pod, a Job the quota refused to give a pod) fails the run with
 * the waiting reason and the Warning events.
 */
export class KubernetesJobsRuntime implements JobsRuntime {
  private readonly core: CoreV1Api;
  private readonly batch: BatchV1Api;
  private readonly log: Log;

  constructor(
    kubeConfig: KubeConfig,
    private readonly applier: Pick<
      KubernetesApplier,
      "apply" | "remove" | "creationFailure" | "listLabelled"
    >,
    /** The release a run's image belongs to (its commit labels the objects); the tools whose namespaces hold runs. */
    private readonly releases: {
      getRelease(id: string): Promise<Release | undefined>;
      listTools(): Promise<readonly { readonly name: string }[]>;
    },
    private readonly options: KubernetesJobsRuntimeOptions,
    private readonly logger: Logger,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.batch = kubeConfig.makeApiClient(BatchV1Api);
    this.log = new Log(kubeConfig);
  }

  async start(spec: JobProcessSpec, onLines: (lines: string[]) => void): Promise<JobProcess> {
    const release = spec.releaseId ? await this.releases.getRelease(spec.releaseId) : undefined;
    if (!release) {
      throw new PipelineError("deploy_failed", `job ${spec.job} names no existing release to run`);
    }
    const { job, secret } = renderJobRun({
      tool: spec.tool,
      job: spec.job,
      runId: spec.runId,
      image: spec.image,
      command: spec.command,
      env: spec.env,
      memoryMb: spec.memoryMb,
      releaseId: release.id,
      commit: release.commit,
      runner: this.options.runner,
    });
    const namespace = namespaceName(spec.tool);
    const name = job.metadata.name;
    // A run id is new each time, so a Job of that name can only be one this runner created before a
    // crash between create and record; it is replaced.
    await this.applier.remove({ apiVersion: "batch/v1", kind: "Job", namespace, name });
    await this.applier.apply(spec.tool, [
      ...renderNamespace(spec.tool, this.options.quota, this.options),
      ...(secret ? [secret] : []),
      job,
    ]);
    const run: Run = {
      namespace,
      name,
      container: spec.job,
      runId: spec.runId,
      onLines,
      cursor: new LogCursor(),
      killed: false,
      wake: () => undefined,
      follow: undefined,
    };
    const log = this.logger.child({ tool: spec.tool, job: spec.job, runId: spec.runId, namespace });
    const exited = this.watch(run, log).finally(() => this.cleanUp(run, log));
    // The runner awaits `exited`; a rejection here is its failed run, not an unhandled promise.
    exited.catch(() => undefined);
    return {
      id: `${namespace}/${name}`,
      exited,
      kill: async () => {
        run.killed = true;
        run.wake();
        await exited.catch(() => undefined);
      },
    };
  }

  /**
   * Deletes the Jobs (with their pods) and Secrets of runs this runner left behind, listed by label in
   * each tool's namespace: Slipway has no right to list across namespaces.
   */
  async removeLeftovers(): Promise<number> {
    const labelSelector = runnerSelector(this.options.runner);
    // The selector already asked for these; checked again because deleting is not undoable.
    const mine = (o: { metadata?: { labels?: Record<string, string> } }) =>
      o.metadata?.labels?.[RUN_LABELS.runner] === this.options.runner;
    let removed = 0;
    for (const { name: tool } of await this.releases.listTools()) {
      const namespace = namespaceName(tool);
      const jobs = await this.applier.listLabelled(tool, "batch/v1", "Job", labelSelector);
      for (const j of jobs.filter(mine)) {
        const name = j.metadata?.name;
        if (!name) continue;
        await this.applier.remove({ apiVersion: "batch/v1", kind: "Job", namespace, name });
        removed++;
      }
      const secrets = await this.applier.listLabelled(tool, "v1", "Secret", labelSelector);
      for (const s of secrets.filter(mine)) {
        const name = s.metadata?.name;
        if (name) await this.applier.remove({ apiVersion: "v1", kind: "Secret", namespace, name });
      }
    }
    return removed;
  }

  /** Until the container has terminated (its exit code), the run was killed (137), or it never started. */
  private async watch(run: Run, log: Logger): Promise<JobExit> {
    const pollMs = this.options.pollMs ?? 1000;
    const startBy = Date.now() + this.options.startTimeoutS * 1000;
    let seenPod = false;
    let lastWaiting = "";
    let quotaSince: number | undefined;
    for (;;) {
      if (run.killed) {
        await this.drain(run);
        return { exitCode: 137 };
      }
      let pod: V1Pod | undefined;
      try {
        pod = await this.podOf(run);
      } catch (error) {
        // A cluster that is briefly unreachable must not fail a run that may have been up for weeks.
        if (!(error instanceof TransientError)) throw error;
        log.warn({ err: error }, "could not read the job's pod; trying again");
        await this.pause(run, pollMs);
        continue;
      }
      const status = pod?.status?.containerStatuses?.find((c) => c.name === run.container);
      const terminated = status?.state?.terminated;
      if (pod) seenPod = true;
      if (pod && (status?.state?.running || terminated)) this.follow(run, pod, log);
      if (terminated) {
        const unread = await this.drain(run);
        return { exitCode: terminated.exitCode, ...(unread ? { outputIncomplete: unread } : {}) };
      }
      if (pod && (pod.status?.phase === "Failed" || pod.status?.phase === "Succeeded")) {
        // Ended without the container reporting an exit (evicted, node lost): as good as killed.
        await this.drain(run);
        run.onLines([`slipway: the pod ended without an exit code: ${describePod(pod)}`]);
        return { exitCode: 137 };
      }
      if (!pod && seenPod && !(await this.jobExists(run))) {
        run.onLines(["slipway: the run's Job was deleted outside Slipway"]);
        return { exitCode: 137 };
      }
      if (!pod && !seenPod) {
        // A pod the API server refuses (LimitRange, Pod Security, quota) never comes: the Job controller
        // only records FailedCreate events, so the run fails on them instead of at startTimeoutS.
        const refusal = await this.applier
          .creationFailure(run.namespace, "Job", run.name)
          .catch(() => undefined);
        const kind = refusal === undefined ? undefined : creationFailureKind(refusal);
        quotaSince = kind === "quota" ? (quotaSince ?? Date.now()) : undefined;
        if (kind === "refused" || (kind === "quota" && Date.now() - quotaSince! >= QUOTA_GRACE_MS)) {
          throw new PipelineError(
            "deploy_failed",
            `Kubernetes refuses to create the run's pod: ${creationFailureText(refusal!)}`,
          );
        }
      }
      if (!status?.state?.running) {
        const waiting = pod ? describePod(pod) : "no pod created yet";
        if (waiting !== lastWaiting) log.info({ waiting }, "waiting for the job's pod to start");
        lastWaiting = waiting;
        if (Date.now() > startBy) {
          const events = await this.warnings(run, pod);
          throw new PipelineError(
            "deploy_failed",
            `the pod did not start within ${this.options.startTimeoutS} s: ${waiting}${
              events.length ? `; ${events.join("; ")}` : ""
            }`,
          );
        }
      }
      await this.pause(run, pollMs);
    }
  }

  /** Sleeps until the next poll, or until `kill` wakes the run. */
  private pause(run: Run, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      run.wake = () => (clearTimeout(t), resolve());
    });
  }

  /** The run's pod (there is one: `backoffLimit: 0`), by the run label the template gives it. */
  private async podOf(run: Run): Promise<V1Pod | undefined> {
    try {
      const list = await this.core.listNamespacedPod({
        namespace: run.namespace,
        labelSelector: `${RUN_LABELS.run}=${run.runId}`,
      });
      return list.items[0];
    } catch (error) {
      throw kubeError("list", `the pods of Job ${run.namespace}/${run.name}`, error);
    }
  }

  private async jobExists(run: Run): Promise<boolean> {
    try {
      await this.batch.readNamespacedJob({ namespace: run.namespace, name: run.name });
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw kubeError("read", { kind: "Job", namespace: run.namespace, name: run.name }, error);
    }
  }

  /** Follows the container's log unless a follow is running; a follow that ended early is resumed. */
  private follow(run: Run, pod: V1Pod, log: Logger): void {
    const podName = pod.metadata?.name;
    if (!podName || (run.follow && !run.follow.ended)) return;
    run.follow = {
      pod: podName,
      ...followLog(this.log, run.namespace, podName, run.container, run.cursor, run.onLines, log),
    };
  }

  /**
   * Stops the follow and reads what it has not handed on yet (the read overlaps; the cursor skips).
   * Returns why that read failed (`could not read the pod's log: …`), for a run whose container ran.
   */
  private async drain(run: Run): Promise<string | undefined> {
    const podName = run.follow?.pod ?? (await this.podOf(run).catch(() => undefined))?.metadata?.name;
    run.follow?.stop();
    run.follow = undefined;
    if (!podName) return undefined;
    // client-node's readNamespacedPodLog has no `sinceTime`; `Log` without follow is the same GET.
    let text = "";
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        text += chunk.toString("utf8");
        done();
      },
    });
    const finished = new Promise<void>((resolve) => {
      sink.on("finish", resolve);
      sink.on("error", () => resolve());
    });
    try {
      await this.log.log(run.namespace, podName, run.container, sink, {
        follow: false,
        timestamps: true,
        ...(run.cursor.sinceTime ? { sinceTime: run.cursor.sinceTime } : {}),
      });
      // A read that stalls must not keep the run from ending; what it missed is lost, not the run.
      const ended = await Promise.race([finished.then(() => true), sleep(DRAIN_TIMEOUT_MS, false)]);
      if (!ended) return `could not read the pod's log: no answer within ${DRAIN_TIMEOUT_MS / 1000} s`;
    } catch (error) {
      // A container that never started, or a pod already gone, has no more output to read; for one
      // that ran (the caller decides) the output is lost, and the run must say so (pods/log needs the
      // node's kubelet, which may be unreachable from the API server).
      const ref = { kind: "Pod", namespace: run.namespace, name: podName };
      return `could not read the pod's log: ${kubeError("read the log of", ref, error).message}`;
    }
    run.cursor.newRead();
    const lines = text.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    const fresh = run.cursor.take(lines);
    if (fresh.length > 0) run.onLines(fresh);
    return undefined;
  }

  /** The Warning events of the run's Job and pod, oldest first: why a pod could not be made or start. */
  private async warnings(run: Run, pod: V1Pod | undefined): Promise<string[]> {
    const events: CoreV1Event[] = [];
    const of = [["Job", run.name], ...(pod?.metadata?.name ? [["Pod", pod.metadata.name]] : [])] as const;
    for (const [kind, name] of of) {
      const list = await this.core
        .listNamespacedEvent({
          namespace: run.namespace,
          fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
        })
        .catch(() => ({ items: [] as CoreV1Event[] }));
      events.push(...list.items.filter((e) => e.type === "Warning"));
    }
    const at = (e: CoreV1Event) => new Date(e.lastTimestamp ?? e.eventTime ?? 0).getTime();
    return events.sort((a, b) => at(a) - at(b)).map((e) => `${e.reason ?? "Warning"}: ${e.message ?? ""}`);
  }

  /** Deletes the Job with its pods (Background propagation; a Job's default would orphan them) and the Secret. */
  private async cleanUp(run: Run, log: Logger): Promise<void> {
    const refs = [
      { apiVersion: "batch/v1", kind: "Job", namespace: run.namespace, name: run.name },
      {
        apiVersion: "v1",
        kind: "Secret",
        namespace: run.namespace,
        name: jobRunSecretName(run.container, run.runId),
      },
    ];
    for (const ref of refs) {
      // Retried: a Job left behind would keep counting against the quota until the next start's clean-up.
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await this.applier.remove(ref);
          break;
        } catch (error) {
          log.warn({ err: error, name: ref.name }, "could not delete a finished run");
          await sleep(1000 * (attempt + 1));
        }
      }
    }
  }
}

/** Phase, the container's waiting reason and message, and the scheduling condition when it failed. */
function describePod(pod: V1Pod): string {
  const parts = [`pod ${pod.metadata?.name ?? "?"} ${pod.status?.phase ?? "Pending"}`];
  for (const c of pod.status?.containerStatuses ?? []) {
    const w = c.state?.waiting;
    if (w?.reason) parts.push(`${w.reason}${w.message ? `: ${w.message}` : ""}`);
  }
  const unscheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled" && c.status === "False");
  if (unscheduled) parts.push(`${unscheduled.reason ?? "Unschedulable"}: ${unscheduled.message ?? ""}`);
  if (pod.status?.reason)
    parts.push(`${pod.status.reason}${pod.status.message ? `: ${pod.status.message}` : ""}`);
  return parts.join(", ");
}
