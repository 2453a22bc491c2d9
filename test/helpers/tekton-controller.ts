import { existsSync } from "node:fs";
import path from "node:path";
import { TriggerService } from "../../services/domain/pipeline/triggers.js";
import { ToolService } from "../../services/domain/tools/tool-service.js";
import { memoryLogger } from "../../services/platform/logger.js";
import type { MemoryStore } from "../fakes/memory-store.js";
import { kubeAssets, type KubeCluster } from "./kube-cluster.js";

// Plays Tekton's controller only as far as Slipway's Tekton backend needs it: for each PipelineRun it
// makes a TaskRun per pipeline task (in the Pipeline's order) and that TaskRun's pod from the Task's
// steps (containers `step-<name>`, their securityContext and the run's pod template, so Pod Security
// admission judges what the Tasks ask for), then reports step states, results and conditions through
// the status subresource as Tekton does. It runs no step: the stand-in kubelet serves each container's
// log lines (PodScript.containerLogs). Workspaces are emptyDirs (no volume binder runs here).

export interface StepPlay {
  readonly exitCode?: number;
  /** The container's termination reason (e.g. OOMKilled); default Completed or Error. */
  readonly reason?: string;
  readonly logs?: readonly string[];
}

export interface RunPlay {
  /** Steps by `<pipeline task>/<step>`; any other step prints `<task>/<step>: ok` and exits 0. */
  readonly steps?: Readonly<Record<string, StepPlay>>;
  /** This step keeps running until the run is cancelled (`spec.status: Cancelled`). */
  readonly hangAt?: string;
  /** The run's timeout strikes while this step runs. */
  readonly timeoutAt?: string;
  /** Task results by `<pipeline task>/<result>`. */
  readonly results?: Readonly<Record<string, string>>;
}

interface Obj {
  metadata: { name: string; uid?: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
}

interface TaskStep {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  securityContext?: unknown;
  computeResources?: unknown;
}

const TEKTON = "/apis/tekton.dev/v1/namespaces";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

/** Installs Tekton's CRDs (tekton-crds.yaml of the assets) and waits until they are served. */
export async function installTektonCrds(cluster: KubeCluster): Promise<void> {
  // The unpacked assets hold it unless they were unpacked before it was added; then the source has it.
  const unpacked = path.join(kubeAssets().dir!, "tekton-crds.yaml");
  const source = path.join(process.env.SLIPWAY_TEST_KUBE_ASSETS ?? "", "tekton-crds.yaml");
  const file = existsSync(unpacked) ? unpacked : source;
  const applied = await cluster.kubectlRun("admin", ["apply", "--server-side", "-f", file]);
  if (applied.code !== 0) throw new Error(`installing Tekton's CRDs: ${applied.stderr}`);
  const waited = await cluster.kubectlRun("admin", [
    "wait",
    "--for=condition=Established",
    "crd/pipelineruns.tekton.dev",
    "crd/taskruns.tekton.dev",
    "crd/tasks.tekton.dev",
    "crd/pipelines.tekton.dev",
    "--timeout=60s",
  ]);
  if (waited.code !== 0) throw new Error(`Tekton's CRDs not established: ${waited.stderr}`);
}

/** The builds namespace as an install makes it: Pod Security `restricted` enforced, with the push Secret. */
export async function createBuildsNamespace(
  cluster: KubeCluster,
  namespace: string,
  pushSecret: string,
): Promise<void> {
  await cluster.api("POST", "/api/v1/namespaces", {
    metadata: {
      name: namespace,
      labels: {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "v1.24",
      },
    },
  });
  await cluster.api("POST", `/api/v1/namespaces/${namespace}/secrets`, {
    metadata: { name: pushSecret },
    type: "Opaque",
    stringData: { "config.json": "{}" },
  });
}

export class TektonStandIn {
  /** Pods it could not create, with the API server's answer (Pod Security refusals land here). */
  readonly refused: string[] = [];
  /** Pods it created. */
  readonly pods: string[] = [];
  /** The Secrets each run's workspaces name that existed when the run started, by run name. */
  readonly secretsSeen = new Map<string, string[]>();
  /** Every run it played (name and uid), in the order they appeared. */
  readonly played: { name: string; uid: string }[] = [];
  private readonly seen = new Set<string>();
  private readonly playing: Promise<void>[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly cluster: KubeCluster,
    private readonly namespace: string,
    private readonly play: (run: Obj) => RunPlay,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const runs = await this.cluster
          .api<{ items: Obj[] }>("GET", `${TEKTON}/${this.namespace}/pipelineruns`)
          .catch(() => ({ items: [] as Obj[] }));
        for (const run of runs.items) {
          // By uid: a build re-run after its builder died gets a new run of the same name.
          const uid = run.metadata.uid ?? run.metadata.name;
          if (this.seen.has(uid)) continue;
          this.seen.add(uid);
          this.played.push({ name: run.metadata.name, uid });
          this.playing.push(
            this.playRun(run).catch(async (e: unknown) => {
              // A run deleted while it played (recovery removes a dead builder's runs) just stops.
              if (!(await this.exists(run))) return;
              this.refused.push(String(e));
            }),
          );
        }
        await sleep(100);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await Promise.all(this.playing);
  }

  private async exists(run: Obj): Promise<boolean> {
    return this.cluster.api<Obj>("GET", `${TEKTON}/${this.namespace}/pipelineruns/${run.metadata.name}`).then(
      (now) => now.metadata.uid === run.metadata.uid,
      () => false,
    );
  }

  private async playRun(run: Obj): Promise<void> {
    const ns = this.namespace;
    const play = this.play(run);
    const pipelineRef = run.spec.pipelineRef as { name: string };
    const pipeline = await this.cluster.api<Obj>("GET", `${TEKTON}/${ns}/pipelines/${pipelineRef.name}`);
    const runParams = new Map(
      (run.spec.params as { name: string; value: string }[]).map((p) => [p.name, p.value]),
    );
    const subst = (text: string) =>
      text
        .replace(/\$\(params\.([a-z-]+)\)/g, (_, n: string) => runParams.get(n) ?? "")
        .replace(/\$\([a-z.-]+\)/g, "x");
    const runStatus = (status: Record<string, unknown>) =>
      this.cluster.api(
        "PATCH",
        `${TEKTON}/${ns}/pipelineruns/${run.metadata.name}/status`,
        { status },
        "application/merge-patch+json",
      );
    // A run deleted (or replaced by a re-run's) counts as cancelled: Tekton's pods would go with it.
    const cancelled = async () => {
      const now = await this.cluster
        .api<Obj>("GET", `${TEKTON}/${ns}/pipelineruns/${run.metadata.name}`)
        .catch(() => undefined);
      return !now || now.metadata.uid !== run.metadata.uid || now.spec.status === "Cancelled";
    };
    const secrets = ((run.spec.workspaces ?? []) as { secret?: { secretName: string } }[])
      .map((w) => w.secret?.secretName)
      .filter((n): n is string => n !== undefined);
    const existing: string[] = [];
    for (const secret of secrets) {
      const found = await this.cluster.api("GET", `/api/v1/namespaces/${ns}/secrets/${secret}`).then(
        () => true,
        () => false,
      );
      if (found) existing.push(secret);
    }
    this.secretsSeen.set(run.metadata.name, existing);
    await runStatus({
      startTime: now(),
      conditions: [{ type: "Succeeded", status: "Unknown", reason: "Running", lastTransitionTime: now() }],
    });
    const results: { name: string; value: string }[] = [];
    const tasks = pipeline.spec.tasks as { name: string; taskRef: { name: string } }[];
    for (const pt of tasks) {
      const task = await this.cluster.api<Obj>("GET", `${TEKTON}/${ns}/tasks/${pt.taskRef.name}`);
      const taskRunName = `${run.metadata.name}-${pt.name}`;
      const taskRun = await this.cluster.api<Obj>("POST", `${TEKTON}/${ns}/taskruns`, {
        apiVersion: "tekton.dev/v1",
        kind: "TaskRun",
        metadata: {
          name: taskRunName,
          labels: {
            "tekton.dev/pipelineRun": run.metadata.name,
            "tekton.dev/pipelineTask": pt.name,
            "tekton.dev/task": pt.taskRef.name,
          },
          ownerReferences: [
            {
              apiVersion: "tekton.dev/v1",
              kind: "PipelineRun",
              name: run.metadata.name,
              uid: run.metadata.uid,
              controller: true,
              // As Tekton's: a foreground delete of the run waits until its TaskRuns are gone.
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: { taskRef: { name: pt.taskRef.name } },
      });
      const steps = task.spec.steps as TaskStep[];
      const stepTemplate = (task.spec.stepTemplate ?? {}) as { securityContext?: unknown };
      const podName = `${taskRunName}-pod`;
      this.cluster.script(ns, podName, {
        containerLogs: Object.fromEntries(
          steps.map((s) => [
            `step-${s.name}`,
            play.steps?.[`${pt.name}/${s.name}`]?.logs ?? [`${pt.name}/${s.name}: ok`],
          ]),
        ),
      });
      const workspaces = (task.spec.workspaces ?? []) as { name: string; mountPath?: string }[];
      const stepSpecs = (
        (run.spec.taskRunSpecs ?? []) as {
          pipelineTaskName: string;
          stepSpecs?: { name: string; computeResources: unknown }[];
        }[]
      ).find((t) => t.pipelineTaskName === pt.name)?.stepSpecs;
      const podTemplate = (
        (run.spec.taskRunTemplate ?? {}) as { podTemplate?: { securityContext?: unknown } }
      ).podTemplate;
      const taskRunStatus = (status: Record<string, unknown>) =>
        this.cluster.api(
          "PATCH",
          `${TEKTON}/${ns}/taskruns/${taskRunName}/status`,
          { status },
          "application/merge-patch+json",
        );
      const fail = async (reason: string, message: string, stepStates: unknown[]) => {
        await taskRunStatus({
          podName,
          steps: stepStates,
          conditions: [{ type: "Succeeded", status: "False", reason, message, lastTransitionTime: now() }],
        });
        const runReason =
          reason === "TaskRunCancelled"
            ? "Cancelled"
            : reason === "TaskRunTimeout"
              ? "PipelineRunTimeout"
              : "Failed";
        await runStatus({
          completionTime: now(),
          conditions: [
            { type: "Succeeded", status: "False", reason: runReason, message, lastTransitionTime: now() },
          ],
        });
      };
      try {
        await this.cluster.api("POST", `/api/v1/namespaces/${ns}/pods`, {
          metadata: {
            name: podName,
            labels: { "tekton.dev/taskRun": taskRunName },
            ownerReferences: [
              {
                apiVersion: "tekton.dev/v1",
                kind: "TaskRun",
                name: taskRunName,
                uid: taskRun.metadata.uid,
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          },
          spec: {
            restartPolicy: "Never",
            ...(podTemplate?.securityContext ? { securityContext: podTemplate.securityContext } : {}),
            containers: steps.map((s) => ({
              name: `step-${s.name}`,
              image: subst(s.image),
              command: s.command ?? ["/tekton/scripts/step"],
              args: (s.args ?? []).map(subst),
              securityContext: s.securityContext ?? stepTemplate.securityContext,
              resources:
                stepSpecs?.find((x) => x.name === s.name)?.computeResources ?? s.computeResources ?? {},
              // As Tekton mounts them: its own emptyDir at /workspace, each workspace at its mountPath
              // (so a Task mounting one at /workspace is refused by the API server, as on a cluster).
              volumeMounts: [
                { name: "tekton-internal-workspace", mountPath: "/workspace" },
                ...workspaces.map((w) => ({
                  name: `ws-${w.name}`,
                  mountPath: w.mountPath ?? `/workspace/${w.name}`,
                })),
              ],
            })),
            volumes: [
              { name: "tekton-internal-workspace", emptyDir: {} },
              ...workspaces.map((w) => ({ name: `ws-${w.name}`, emptyDir: {} })),
            ],
          },
        });
        this.pods.push(podName);
      } catch (error) {
        this.refused.push(`${podName}: ${String(error)}`);
        await fail("PodCreationFailed", String(error), []);
        return;
      }
      // Tekton reports the pod once the kubelet started it.
      for (let i = 0; i < 150; i++) {
        const pod = await this.cluster.api<{ status?: { phase?: string } }>(
          "GET",
          `/api/v1/namespaces/${ns}/pods/${podName}`,
        );
        if (pod.status?.phase === "Running") break;
        await sleep(100);
      }
      const states: Record<string, unknown>[] = [];
      for (const s of steps) {
        const key = `${pt.name}/${s.name}`;
        const startedAt = now();
        const running = { name: s.name, container: `step-${s.name}`, running: { startedAt } };
        await taskRunStatus({
          podName,
          steps: [...states, running],
          conditions: [
            { type: "Succeeded", status: "Unknown", reason: "Running", lastTransitionTime: now() },
          ],
        });
        await sleep(300);
        if (play.hangAt === key || (await cancelled())) {
          while (!(await cancelled())) await sleep(100);
          const ended = {
            ...running,
            running: undefined,
            terminated: { exitCode: 1, reason: "TaskRunCancelled", startedAt, finishedAt: now() },
          };
          await fail("TaskRunCancelled", `TaskRun "${taskRunName}" was cancelled`, [...states, ended]);
          return;
        }
        if (play.timeoutAt === key) {
          const ended = {
            ...running,
            running: undefined,
            terminated: { exitCode: 1, reason: "TaskRunTimeout", startedAt, finishedAt: now() },
          };
          await fail(
            "TaskRunTimeout",
            `PipelineRun "${run.metadata.name}" failed to finish within "${(run.spec.timeouts as { pipeline: string }).pipeline}"`,
            [...states, ended],
          );
          return;
        }
        const p = play.steps?.[key] ?? {};
        const exitCode = p.exitCode ?? 0;
        states.push({
          name: s.name,
          container: `step-${s.name}`,
          terminated: {
            exitCode,
            reason: p.reason ?? (exitCode === 0 ? "Completed" : "Error"),
            startedAt,
            finishedAt: now(),
          },
        });
        if (exitCode !== 0) {
          await fail("Failed", `"step-${s.name}" exited with code ${exitCode}`, states);
          return;
        }
      }
      const taskResults = Object.entries(play.results ?? {})
        .filter(([k]) => k.startsWith(`${pt.name}/`))
        .map(([k, value]) => ({ name: k.slice(pt.name.length + 1), type: "string", value }));
      await taskRunStatus({
        podName,
        steps: states,
        results: taskResults,
        conditions: [{ type: "Succeeded", status: "True", reason: "Succeeded", lastTransitionTime: now() }],
      });
      const mapped = ((pipeline.spec.results ?? []) as { name: string; value: string }[])
        .map((r) => {
          const m = /^\$\(tasks\.([a-z-]+)\.results\.([a-z-]+)\)$/.exec(r.value);
          const hit = m && m[1] === pt.name ? taskResults.find((t) => t.name === m[2]) : undefined;
          return hit ? { name: r.name, value: hit.value } : undefined;
        })
        .filter((r): r is { name: string; value: string } => r !== undefined);
      results.push(...mapped);
    }
    await runStatus({
      completionTime: now(),
      results,
      conditions: [{ type: "Succeeded", status: "True", reason: "Succeeded", lastTransitionTime: now() }],
    });
  }
}

/** A new tool `name` in `store` and a push of `commit` to it, queued as a build; the build's id. */
export async function queuedPush(store: MemoryStore, name: string, commit: string): Promise<string> {
  const tool = (
    await new ToolService(store, { publicUrl: "http://s", webUrl: (t) => `http://${t}.localhost/` }).create(
      name,
    )
  ).name;
  const pushed = await new TriggerService(store, memoryLogger()).push({
    tool: (await store.getTool(tool))!,
    ref: "refs/heads/main",
    commit,
    sourceUrl: `https://forge.example/${name}.git`,
    defaultBranch: "main",
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    explicit: false,
  });
  if (pushed.status !== "queued") throw new Error(`not queued: ${pushed.status}`);
  return pushed.build_id;
}
