import { setTimeout as sleep } from "node:timers/promises";
import type { V1Deployment, V1Pod } from "@kubernetes/client-node";
import {
  LABELS,
  MANAGED_BY,
  commandOf,
  envChecksum,
  envSecretName,
  namespaceName,
  oneOffJobName,
  renderEnvSecret,
  renderNamespace,
  renderWorkload,
  type KubernetesObject,
  type OneOffWorkload,
  type RenderOptions,
  type SecretEnv,
  type ToolQuota,
  type WebserviceWorkload,
  type WorkerWorkload,
} from "../../domain/kubernetes/index.js";
import type { Release } from "../../domain/releases/release.js";
import { PipelineError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { AppRuntime, RunOnceResult, RunSpec, RunningApp } from "../../ports/runtime.js";
import { QUOTA_GRACE_MS, type KubernetesApplier } from "./applier.js";
import { creationFailureKind, creationFailureText } from "./rollout.js";

export interface KubernetesRuntimeOptions {
  readonly render: RenderOptions;
  /** How long `start` waits for the Deployment to roll out (its pods ready) before failing. */
  readonly rolloutTimeoutS: number;
  readonly quota?: Partial<ToolQuota> | undefined;
  /** Between two polls of a Deployment or Job; default 2 s. */
  readonly pollMs?: number | undefined;
}

/** `tool-<tool>/<component>@<release id>`: what `start` returns and `stop`/`logs` take. */
function appId(namespace: string, component: string, releaseId: string): string {
  return `${namespace}/${component}@${releaseId}`;
}

function parseId(id: string): { namespace: string; component: string; releaseId: string } {
  const m = /^([^/]+)\/([^@]+)@(.+)$/.exec(id);
  if (!m) throw new PipelineError("deploy_failed", `not a Kubernetes app id: "${id}"`);
  return { namespace: m[1]!, component: m[2]!, releaseId: m[3]! };
}

/** A Procfile type as a component name (as config/procfile-default.ts names them). */
function componentOf(process: string): string {
  return process.toLowerCase().replace(/_/g, "-");
}

function newest(pods: readonly V1Pod[]): V1Pod | undefined {
  const created = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
  return [...pods].sort((a, b) => created(b) - created(a))[0];
}

/**
 * The cluster profile's AppRuntime: a process is a Deployment (the web process also gets a Service and
 * an Ingress) in the tool's namespace, applied with server-side apply; `start` returns once the rollout
 * is done, which with `maxUnavailable: 0` means the new pods passed their readiness probe while the
 * old ones kept serving. The Deployer's "start beside, switch, stop the old one" is one rolling update
 * here, so `stop` of an app that a newer release already replaced does nothing. See docs/kubernetes.md
 * for what does not map.
 */
export class KubernetesRuntime implements AppRuntime {
  constructor(
    private readonly applier: KubernetesApplier,
    /** The release a RunSpec belongs to: its commit labels every object. */
    private readonly releases: {
      getRelease(id: string): Promise<Release | undefined>;
      /** The tools whose namespaces `list()` looks in. */
      listTools(): Promise<readonly { readonly name: string }[]>;
    },
    private readonly options: KubernetesRuntimeOptions,
    private readonly logger: Logger,
  ) {}

  private async commitOf(releaseId: string): Promise<string> {
    const release = await this.releases.getRelease(releaseId);
    if (!release) throw new PipelineError("deploy_failed", `release ${releaseId} does not exist`);
    return release.commit;
  }

  /** The env Secret of a component (every variable but PORT, which the pod template sets). */
  private secretFor(
    spec: Pick<RunSpec, "tool" | "env">,
    component: string,
  ): { secret?: KubernetesObject; env?: SecretEnv } {
    const data = Object.fromEntries(Object.entries(spec.env).filter(([k]) => k !== "PORT"));
    if (Object.keys(data).length === 0) return {};
    return {
      secret: renderEnvSecret(spec.tool, component, data),
      env: { names: Object.keys(data).sort(), checksum: envChecksum(data) },
    };
  }

  async start(spec: RunSpec): Promise<RunningApp> {
    const component = componentOf(spec.process);
    const namespace = namespaceName(spec.tool);
    const { secret, env } = this.secretFor(spec, component);
    const base = {
      tool: spec.tool,
      component,
      image: spec.image,
      command: spec.command ? commandOf(spec.command, undefined, true) : { process: spec.process },
      memory: `${spec.memoryMb}Mi`,
      env,
      releaseId: spec.releaseId,
      commit: await this.commitOf(spec.releaseId),
      port: spec.port,
    };
    const workload: WebserviceWorkload | WorkerWorkload =
      spec.process === "web"
        ? { ...base, kind: "continuous-webservice" }
        : { ...base, kind: "continuous-worker" };
    const objects = [
      ...renderNamespace(spec.tool, this.options.quota, this.options.render),
      ...(secret ? [secret] : []),
      ...renderWorkload(workload, this.options.render),
    ];
    await this.applier.apply(spec.tool, objects);
    await this.applier.waitForRollout(namespace, component, {
      timeoutS: this.options.rolloutTimeoutS,
      pollMs: this.options.pollMs,
    });
    this.logger.info({ tool: spec.tool, component, releaseId: spec.releaseId }, "rolled out");
    return {
      id: appId(namespace, component, spec.releaseId),
      tool: spec.tool,
      process: spec.process,
      releaseId: spec.releaseId,
      // The Service's cluster DNS name: reachable from inside the cluster (the deployer role runs there).
      address: { host: `${component}.${namespace}.svc`, port: spec.port },
    };
  }

  /** The tool's apps, or every tool's: one list per tool namespace (Slipway may not list across them). */
  async list(tool?: string): Promise<RunningApp[]> {
    const tools = tool ? [tool] : (await this.releases.listTools()).map((t) => t.name);
    const deployments: V1Deployment[] = [];
    for (const t of tools) {
      const selector = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.tool}=${t}`;
      deployments.push(...(await this.applier.listDeployments(t, selector)));
    }
    const apps: RunningApp[] = [];
    for (const d of deployments) {
      const labels = d.metadata?.labels ?? {};
      const owner = labels[LABELS.tool];
      const component = labels[LABELS.workload];
      const releaseId = labels[LABELS.release];
      const namespace = d.metadata?.namespace;
      if (!owner || !component || !releaseId || !namespace) continue;
      const port = d.spec?.template.spec?.containers[0]?.ports?.[0]?.containerPort ?? 0;
      apps.push({
        id: appId(namespace, component, releaseId),
        tool: owner,
        process: component,
        releaseId,
        address: { host: `${component}.${namespace}.svc`, port },
      });
    }
    return apps;
  }

  /**
   * Deletes the component's objects if they still run release `id`; a component a newer release
   * already rolled over is left alone (its old pods are gone with the rolling update).
   */
  async stop(id: string): Promise<void> {
    const { namespace, component, releaseId } = parseId(id);
    const tool = namespace.replace(/^tool-/, "");
    const current = (await this.list(tool)).find((a) => a.process === component);
    if (!current || current.releaseId !== releaseId) return;
    for (const [apiVersion, kind] of [
      ["networking.k8s.io/v1", "Ingress"],
      ["v1", "Service"],
      ["apps/v1", "Deployment"],
      ["v1", "Secret"],
    ] as const) {
      await this.applier.remove({
        apiVersion,
        kind,
        namespace,
        name: kind === "Secret" ? envSecretName(component) : component,
      });
    }
  }

  /**
   * How many pods of the tool's webservice run `releaseId` and are ready, of those its Deployment
   * wants (`webservice status`); undefined when no webservice Deployment runs that release.
   */
  async replicas(tool: string, releaseId: string): Promise<{ ready: number; desired: number } | undefined> {
    const deployments = await this.applier.listDeployments(
      tool,
      `${LABELS.managedBy}=${MANAGED_BY},${LABELS.tool}=${tool},${LABELS.component}=webservice`,
    );
    const d = deployments.find((x) => x.metadata?.labels?.[LABELS.release] === releaseId);
    if (!d) return undefined;
    return { ready: d.status?.readyReplicas ?? 0, desired: d.spec?.replicas ?? 1 };
  }

  async logs(id: string, tail: number): Promise<string[]> {
    const { namespace, component, releaseId } = parseId(id);
    const pods = await this.applier.listPods(
      namespace,
      `${LABELS.workload}=${component},${LABELS.release}=${releaseId}`,
    );
    const pod = newest(pods);
    if (!pod?.metadata?.name) return [];
    // The container is named after the component (pod.ts).
    return this.applier.podLogs(namespace, pod.metadata.name, component, tail);
  }

  /**
   * A one-off Job `<process>-<release id>` (replacing one left from an earlier run of the same
   * release, since a Job cannot change), polled until it succeeds, fails or `timeoutS` passes. The
   * output is read once at the end, not streamed.
   */
  async runOnce(
    spec: Omit<RunSpec, "port" | "command">,
    command: string,
    timeoutS: number,
    onLine?: (line: string) => void,
  ): Promise<RunOnceResult> {
    const component = componentOf(spec.process);
    const namespace = namespaceName(spec.tool);
    const { secret, env } = this.secretFor(spec, component);
    const workload: OneOffWorkload = {
      kind: "one-off",
      tool: spec.tool,
      component,
      image: spec.image,
      command: commandOf(command, undefined, true),
      memory: `${spec.memoryMb}Mi`,
      env,
      releaseId: spec.releaseId,
      commit: await this.commitOf(spec.releaseId),
      timeout: Math.max(1, Math.ceil(timeoutS)),
    };
    const name = oneOffJobName(workload);
    await this.applier.remove({ apiVersion: "batch/v1", kind: "Job", namespace, name });
    await this.applier.apply(spec.tool, [
      ...renderNamespace(spec.tool, this.options.quota, this.options.render),
      ...(secret ? [secret] : []),
      ...renderWorkload(workload, this.options.render),
    ]);
    const deadline = Date.now() + timeoutS * 1000;
    let timedOut = true;
    let quotaSince: number | undefined;
    while (Date.now() < deadline) {
      const job = await this.applier.readJob(namespace, name);
      if ((job.status?.succeeded ?? 0) > 0 || (job.status?.failed ?? 0) > 0) {
        timedOut = false;
        break;
      }
      // A pod the API server refuses (LimitRange, Pod Security, quota) never starts: the Job controller
      // only records FailedCreate events, so they are read while the Job has no pod.
      if ((job.status?.active ?? 0) === 0) {
        const refusal = await this.applier.creationFailure(namespace, "Job", name);
        const kind = refusal === undefined ? undefined : creationFailureKind(refusal);
        quotaSince = kind === "quota" ? (quotaSince ?? Date.now()) : undefined;
        if (kind === "refused" || (kind === "quota" && Date.now() - quotaSince! >= QUOTA_GRACE_MS)) {
          // Left alone, the Job would go on trying until its deadline.
          await this.applier.remove({ apiVersion: "batch/v1", kind: "Job", namespace, name });
          throw new PipelineError(
            "deploy_failed",
            `${spec.process} Job ${namespace}/${name}: Kubernetes refuses to create its pod: ${creationFailureText(refusal!)}`,
            { details: { phase: "deploy", object: `Job ${namespace}/${name}`, refused: true } },
          );
        }
      }
      await sleep(Math.min(this.options.pollMs ?? 2000, Math.max(0, deadline - Date.now())));
    }
    const pods = await this.applier.listPods(namespace, `job-name=${name}`);
    const pod = newest(pods);
    const tail = pod?.metadata?.name
      ? await this.applier.podLogs(namespace, pod.metadata.name, component, 200)
      : [];
    for (const line of tail) onLine?.(line);
    const exit = pod?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode;
    return { code: timedOut ? undefined : exit, timedOut, tail };
  }

  /**
   * Not mapped: a health-check script runs as the pod's exec liveness/readiness probe in a cluster
   * (see pod.ts), so the deployer has no need to exec into a pod itself.
   */
  exec(id: string): Promise<{ ok: boolean; output: string }> {
    return Promise.reject(
      new PipelineError(
        "deploy_failed",
        `running a command in ${id} is not supported on Kubernetes; health_check_script runs as the pod's probe`,
      ),
    );
  }
}
