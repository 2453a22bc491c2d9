import {
  ApiException,
  KubernetesObjectApi,
  Log,
  PatchStrategy,
  type KubeConfig,
} from "@kubernetes/client-node";
import type { KubernetesObject } from "@kubernetes/client-node";
import type {
  BuildBackend,
  BuildEvents,
  BuildPhase,
  BuildRequest,
  BuiltImage,
} from "../../ports/build-backend.js";
import { PipelineError, SlipwayError, TransientError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import { LogCursor, followLog, type LogFollow } from "../kubernetes/log-stream.js";
import { FIELD_MANAGER } from "../kubernetes/applier.js";
import {
  cacheClaim,
  credentialSecretName,
  pipelineRun,
  runName,
  type TektonBuildSettings,
} from "./pipeline-run.js";
import { readPipelines } from "./pipelines-dir.js";
import { StepOutput } from "./step-output.js";
import { requestedSuite } from "../../domain/lifecycle/python-version.js";
import type { StackSuite } from "../../domain/lifecycle/types.js";
import { mapFailure, mapSuccess, stepPhase, type PipelineRunState, type TaskRunState } from "./status.js";

export { readPipelines };

const PHASES: readonly BuildPhase[] = ["detect", "restore", "build", "export"];

export interface TektonBackendOptions extends TektonBuildSettings {
  /** The folder of Task and Pipeline definitions (`pipelines/` of the repository). */
  readonly pipelinesDir: string;
  /** How often the run and its TaskRuns are looked at. */
  readonly pollMs?: number;
  /** The tool's deploy credential for its repository, when it has one (put in a Secret per build). */
  readonly credential?: (
    request: BuildRequest,
  ) => Promise<{ username: string; password: string } | undefined>;
  /**
   * The Python stacks the cluster has images of (`slipway stack push [--suite]`), the default first: its
   * images are `buildImage` and `runImage`. An app's Python request picks the stack, as locally; an app
   * asking for a Python none of them has fails in detect, naming those there are, instead of building
   * on a Python it did not ask for.
   */
  readonly suites?: readonly ClusterStack[] | undefined;
}

export interface ClusterStack extends StackSuite {
  readonly buildImage: string;
  readonly runImage: string;
}

/**
 * Builds as Tekton PipelineRuns (`pipelines/`): one run per build in the builds namespace, its TaskRun
 * pods' logs followed into the build log, its results (image digest, processes) and failures (step,
 * last lines, OOMKilled, timeout) mapped to the build, cancelled (`spec.status: Cancelled`) when the
 * build is cancelled, superseded or times out.
 */
export class TektonBackend implements BuildBackend {
  private readonly objects: KubernetesObjectApi;
  private readonly log: Log;

  private constructor(
    kubeConfig: KubeConfig,
    private readonly options: TektonBackendOptions,
    private readonly logger: Logger,
  ) {
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    this.log = new Log(kubeConfig);
  }

  /** Applies `pipelines/` (server-side, field manager `slipway`) into the builds namespace. */
  static async start(
    kubeConfig: KubeConfig,
    options: TektonBackendOptions,
    logger: Logger,
  ): Promise<TektonBackend> {
    const backend = new TektonBackend(kubeConfig, options, logger);
    for (const o of await readPipelines(options.pipelinesDir)) {
      await backend.apply({ ...o, metadata: { ...o.metadata, namespace: options.namespace } });
    }
    return backend;
  }

  async build(request: BuildRequest, events: BuildEvents): Promise<BuiltImage> {
    const { namespace } = this.options;
    const name = runName(request.buildId);
    const images = await this.stackOf(request, events.onLog);
    await this.apply(cacheClaim(this.options, request.tool, request.component));
    const credential = await this.options.credential?.(request);
    if (credential) await this.createCredential(request.buildId, credential);
    try {
      await this.objects.create(
        pipelineRun({ ...this.options, ...images }, request, credential !== undefined),
        undefined,
        undefined,
        FIELD_MANAGER,
      );
      return await this.follow(name, events);
    } finally {
      if (credential) {
        await this.objects
          .delete({
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: credentialSecretName(request.buildId), namespace },
          })
          .catch((e: unknown) =>
            this.logger.warn({ err: e, run: name }, "could not delete a build's source credential"),
          );
      }
    }
  }

  /** The build and run images of the stack the app's Python request picks (the default's when none). */
  private async stackOf(
    request: BuildRequest,
    onLog: (line: string) => void,
  ): Promise<{ buildImage: string; runImage: string }> {
    const { suites, buildImage, runImage } = this.options;
    const requested = suites ? await requestedSuite(request.appDir, {}, suites, onLog) : undefined;
    if (!requested || requested.suite === suites?.[0]) return { buildImage, runImage };
    const { suite, python } = requested.suite;
    onLog(`${requested.source} asks for Python ${python}: building on the Debian ${suite} stack`);
    return { buildImage: requested.suite.buildImage, runImage: requested.suite.runImage };
  }

  /**
   * The run's source credential. Created, not applied: Slipway's role in the builds namespace may create
   * and delete Secrets but never read one back. One left by a builder that died before deleting it (a
   * re-run of the same build) is replaced.
   */
  private async createCredential(
    buildId: string,
    credential: { username: string; password: string },
  ): Promise<void> {
    const secret = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: credentialSecretName(buildId), namespace: this.options.namespace },
      type: "Opaque",
      stringData: credential,
    } as KubernetesObject;
    const create = () => this.objects.create(secret, undefined, undefined, FIELD_MANAGER);
    try {
      await create().catch(async (error: unknown) => {
        if (!(error instanceof ApiException) || (error as ApiException<unknown>).code !== 409) throw error;
        await this.objects.delete(secret);
        await create();
      });
    } catch (error) {
      throw kubeError(`create Secret ${secret.metadata?.name ?? ""}`, error);
    }
  }

  /** Marks the run cancelled; Tekton stops its pods. */
  async cancel(buildId: string): Promise<void> {
    await this.cancelByName(runName(buildId));
  }

  private async cancelByName(name: string): Promise<void> {
    await this.objects.patch(
      {
        apiVersion: "tekton.dev/v1",
        kind: "PipelineRun",
        metadata: { name, namespace: this.options.namespace },
        spec: { status: "Cancelled" },
      } as KubernetesObject,
      undefined,
      undefined,
      FIELD_MANAGER,
      undefined,
      PatchStrategy.MergePatch,
    );
  }

  private async follow(name: string, { onLog, onPhase, signal }: BuildEvents): Promise<BuiltImage> {
    const { namespace } = this.options;
    const follows = new Map<string, { follow: LogFollow; cursor: LogCursor; done: boolean }>();
    const outputs = new Map<string, StepOutput>();
    // Phases only move forward: the steps of earlier phases stay in the TaskRuns' status.
    let entered = -1;
    const enter = (phase: BuildPhase | undefined) => {
      const at = phase ? PHASES.indexOf(phase) : -1;
      if (at <= entered) return;
      entered = at;
      onPhase(phase!);
    };
    const pollMs = this.options.pollMs ?? 1000;
    try {
      for (;;) {
        if (signal.aborted) {
          await this.cancelRun(name);
          throw signal.reason instanceof Error ? signal.reason : new SlipwayError("cancelled", "cancelled");
        }
        const run = await this.read<PipelineRunState>("tekton.dev/v1", "PipelineRun", name);
        const taskRuns = await this.taskRuns(name);
        for (const taskRun of taskRuns) {
          const task = taskRun.metadata?.labels?.["tekton.dev/pipelineTask"] ?? "";
          const pod = taskRun.status?.podName;
          for (const step of taskRun.status?.steps ?? []) {
            if (!step.running && !step.terminated) continue;
            enter(stepPhase(task, step.name));
            if (!pod) continue;
            const container = step.container ?? `step-${step.name}`;
            const key = `${pod}/${container}`;
            const f = follows.get(key);
            if (f?.done) continue;
            if (f && !f.follow.ended) continue;
            // The follow ended: the container ended (take its last lines once more), or the connection dropped.
            if (f && step.terminated) f.done = true;
            const output = outputs.get(`${task}/${step.name}`) ?? new StepOutput();
            outputs.set(`${task}/${step.name}`, output);
            const cursor = f?.cursor ?? new LogCursor();
            const follow = followLog(
              this.log,
              namespace,
              pod,
              container,
              cursor,
              (fresh) => {
                for (const line of fresh) {
                  const shown = output.take(line);
                  if (shown !== undefined) onLog(shown);
                }
              },
              this.logger,
            );
            follows.set(key, { follow, cursor, done: f?.done ?? false });
          }
        }
        const outcome = run.status?.conditions?.find((c) => c.type === "Succeeded");
        if (outcome?.status === "True" || outcome?.status === "False") {
          // Let the last follows deliver what the containers printed last.
          await this.drain(
            [...follows.values()].map((f) => f.follow),
            pollMs,
          );
          if (outcome.status === "True") return mapSuccess(run, taskRuns);
          throw mapFailure(run, taskRuns, (task, step) => outputs.get(`${task}/${step}`));
        }
        await sleep(pollMs, signal);
      }
    } finally {
      for (const f of follows.values()) f.follow.stop();
    }
  }

  private async drain(follows: LogFollow[], pollMs: number): Promise<void> {
    for (let i = 0; i < 20 && follows.some((f) => !f.ended); i++) await sleep(Math.min(pollMs, 100));
  }

  private async cancelRun(name: string): Promise<void> {
    await this.cancelByName(name).catch((e: unknown) =>
      this.logger.warn({ err: e, run: name }, "could not cancel the PipelineRun"),
    );
  }

  private async taskRuns(pipelineRunName: string): Promise<TaskRunState[]> {
    try {
      const list = await this.objects.list<TaskRunState>(
        "tekton.dev/v1",
        "TaskRun",
        this.options.namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        `tekton.dev/pipelineRun=${pipelineRunName}`,
      );
      return list.items;
    } catch (error) {
      throw kubeError(`list the TaskRuns of ${pipelineRunName}`, error);
    }
  }

  private async read<T extends KubernetesObject>(apiVersion: string, kind: string, name: string): Promise<T> {
    try {
      return await this.objects.read<T>({
        apiVersion,
        kind,
        metadata: { name, namespace: this.options.namespace },
      });
    } catch (error) {
      throw kubeError(`read ${kind} ${name}`, error);
    }
  }

  private async apply(o: KubernetesObject): Promise<void> {
    try {
      await this.objects.patch(o, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (error) {
      throw kubeError(`apply ${o.kind} ${o.metadata?.name ?? ""}`, error);
    }
  }
}

function kubeError(what: string, error: unknown): SlipwayError {
  const code = error instanceof ApiException ? (error as ApiException<unknown>).code : undefined;
  const message = `could not ${what} on the cluster: ${code ?? ""} ${errorMessage(error)}`.replace(
    /\s+/g,
    " ",
  );
  // The API server answering 5xx or not at all is worth a retry; a 4xx is a refusal.
  return code !== undefined && code < 500
    ? new PipelineError("build_failed", message, { cause: error })
    : new TransientError(message, { cause: error }, "build_failed");
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
