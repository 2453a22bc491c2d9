import { createHash } from "node:crypto";
// Types only: erased at compile time, so the domain does not load the Kubernetes client.
import type {
  V1CronJob,
  V1Deployment,
  V1DeploymentStrategy,
  V1Ingress,
  V1Job,
  V1JobSpec,
  V1LimitRange,
  V1LimitRangeItem,
  V1Namespace,
  V1NetworkPolicy,
  V1NetworkPolicyIngressRule,
  V1NetworkPolicyPeer,
  V1NetworkPolicySpec,
  V1ObjectMeta,
  V1ResourceQuota,
  V1Secret,
  V1Service,
} from "@kubernetes/client-node";
import { InputError } from "../../platform/errors.js";
import { validateToolName } from "../tools/tool.js";
import { expandSchedule } from "./cron.js";
import {
  DEFAULT_CPU,
  DEFAULT_INGRESS_NAMESPACE,
  DEFAULT_MEMORY,
  type OneOffWorkload,
  type RenderOptions,
  type ScheduledWorkload,
  type ToolWorkload,
  type WebserviceWorkload,
  type WorkerWorkload,
  resources,
  validateComponentName,
  validateEnvName,
  validateIngressNamespace,
  validateOptions,
  validateWorkload,
  workloadPort,
} from "./model.js";
import {
  ANNOTATIONS,
  LABELS,
  MAX_CRONJOB_NAME,
  boundedName,
  envSecretName,
  namespaceName,
  roleOf,
  selectorLabels,
  toolLabels,
  workloadLabels,
} from "./names.js";
import { PORT_NAME, podTemplate } from "./pod.js";

/**
 * A rendered object in wire form (the JSON the API server takes, as YAML shows it): what the adapter
 * applies, keyed by kind, namespace and name. The field types are @kubernetes/client-node's, which are
 * the wire names except where noted (LimitRange below).
 */
export type Rendered<T> = Omit<T, "apiVersion" | "kind" | "metadata"> & {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta & { name: string };
};

/**
 * client-node calls LimitRangeItem's `default` `_default` in memory and renames it when it serialises;
 * rendered objects use the wire name, so the adapter must send them as they are (apply-patch JSON/YAML),
 * not through client-node's ObjectSerializer.
 */
export type WireLimitRange = Omit<V1LimitRange, "spec"> & {
  spec: { limits: (Omit<V1LimitRangeItem, "_default"> & { default?: Record<string, string> })[] };
};

/** The same for NetworkPolicyIngressRule's `from`, which client-node calls `_from` in memory. */
export type WireNetworkPolicy = Omit<V1NetworkPolicy, "spec"> & {
  spec: Omit<V1NetworkPolicySpec, "ingress"> & {
    ingress?: (Omit<V1NetworkPolicyIngressRule, "_from"> & { from?: V1NetworkPolicyPeer[] })[];
  };
};

export type KubernetesObject =
  | Rendered<V1Namespace>
  | Rendered<V1ResourceQuota>
  | Rendered<WireLimitRange>
  | Rendered<WireNetworkPolicy>
  | Rendered<V1Secret>
  | Rendered<V1Service>
  | Rendered<V1Deployment>
  | Rendered<V1CronJob>
  | Rendered<V1Job>
  | Rendered<V1Ingress>;

/**
 * A tool namespace's budget. Quantities are Kubernetes quantity strings, counts are numbers. The
 * defaults (`DEFAULT_QUOTA`) fit a handful of small components with room for one extra pod during a
 * rolling update; operators override per tool, as Toolforge does.
 */
export interface ToolQuota {
  readonly requestsCpu: string;
  readonly limitsCpu: string;
  readonly requestsMemory: string;
  readonly limitsMemory: string;
  readonly pods: number;
  readonly services: number;
  readonly secrets: number;
  readonly configMaps: number;
  readonly deployments: number;
  readonly jobs: number;
  readonly cronJobs: number;
  readonly ingresses: number;
  /** Largest limit one container may ask for (LimitRange `max`). */
  readonly containerMaxCpu: string;
  readonly containerMaxMemory: string;
}

export const DEFAULT_QUOTA: ToolQuota = Object.freeze({
  requestsCpu: "2",
  limitsCpu: "4",
  requestsMemory: "4Gi",
  limitsMemory: "8Gi",
  pods: 16,
  services: 8,
  secrets: 32,
  configMaps: 16,
  deployments: 8,
  jobs: 16,
  cronJobs: 32,
  ingresses: 8,
  containerMaxCpu: "2",
  containerMaxMemory: "4Gi",
});

/** Finished Jobs are kept this long so their pods' logs can be read (Toolforge: 30 s, with Loki). */
export const JOB_TTL_SECONDS = 3600;
/** A CronJob run that could not start on time may still start this late (e.g. after a controller restart). */
export const CRON_STARTING_DEADLINE_SECONDS = 300;
export const PROGRESS_DEADLINE_SECONDS = 600;
export const REVISION_HISTORY_LIMIT = 3;

function meta(
  name: string,
  namespace: string,
  labels: Record<string, string>,
  annotations?: Record<string, string>,
) {
  return { name, namespace, labels, ...(annotations ? { annotations } : {}) };
}

/**
 * The tool's namespace `tool-<tool>` with its ResourceQuota, LimitRange and NetworkPolicy. The namespace
 * enforces the Pod Security Standard `restricted`, which every pod Slipway renders meets; NodePort and
 * LoadBalancer Services are not allowed (quota 0), and the NetworkPolicy admits connections only from
 * the tool's own pods and the ingress controller's namespace, so a tool is reachable only through the
 * shared ingress, never by another tool's pods at its pod or Service address.
 */
export function renderNamespace(
  tool: string,
  quota: Partial<ToolQuota> = {},
  network: Pick<RenderOptions, "ingressNamespace"> = {},
): KubernetesObject[] {
  validateToolName(tool);
  validateIngressNamespace(network.ingressNamespace);
  const q: ToolQuota = { ...DEFAULT_QUOTA, ...quota };
  const namespace = namespaceName(tool);
  const labels = toolLabels(tool);
  const defaults = resources({
    tool,
    component: "(namespace default)",
    cpu: DEFAULT_CPU,
    memory: DEFAULT_MEMORY,
  });
  const ns: Rendered<V1Namespace> = {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: namespace,
      labels: {
        ...labels,
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "latest",
      },
    },
  };
  const quotaObject: Rendered<V1ResourceQuota> = {
    apiVersion: "v1",
    kind: "ResourceQuota",
    metadata: meta("tool-quota", namespace, labels),
    spec: {
      hard: {
        "requests.cpu": q.requestsCpu,
        "limits.cpu": q.limitsCpu,
        "requests.memory": q.requestsMemory,
        "limits.memory": q.limitsMemory,
        pods: String(q.pods),
        services: String(q.services),
        "services.nodeports": "0",
        "services.loadbalancers": "0",
        secrets: String(q.secrets),
        configmaps: String(q.configMaps),
        persistentvolumeclaims: "0",
        "count/deployments.apps": String(q.deployments),
        "count/jobs.batch": String(q.jobs),
        "count/cronjobs.batch": String(q.cronJobs),
        "count/ingresses.networking.k8s.io": String(q.ingresses),
      },
    },
  };
  const limitRange: Rendered<WireLimitRange> = {
    apiVersion: "v1",
    kind: "LimitRange",
    metadata: meta("tool-limits", namespace, labels),
    spec: {
      limits: [
        {
          type: "Container",
          // Only for containers Slipway did not render (it always sets resources): the same defaults.
          default: { cpu: DEFAULT_CPU, memory: DEFAULT_MEMORY },
          defaultRequest: { ...defaults.requests },
          max: { cpu: q.containerMaxCpu, memory: q.containerMaxMemory },
          min: { cpu: "10m", memory: "32Mi" },
        },
      ],
    },
  };
  // Ingress only: egress stays open, because tools call APIs and databases outside the cluster, and a
  // connection to another tool's pods is refused by that tool's own policy.
  const isolation: Rendered<WireNetworkPolicy> = {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: meta("tool-isolation", namespace, labels),
    spec: {
      podSelector: {},
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [
            { podSelector: {} },
            {
              namespaceSelector: {
                matchLabels: {
                  "kubernetes.io/metadata.name": network.ingressNamespace ?? DEFAULT_INGRESS_NAMESPACE,
                },
              },
            },
          ],
        },
      ],
    },
  };
  return [ns, quotaObject, limitRange, isolation];
}

/** A stable digest of a component's env values, for `SecretEnv.checksum`. */
export function envChecksum(data: Readonly<Record<string, string>>): string {
  const sorted = Object.keys(data)
    .sort()
    .map((k) => [k, data[k]]);
  return `sha256:${createHash("sha256").update(JSON.stringify(sorted)).digest("hex")}`;
}

/** The Secret a component's pods take their environment from (`envFrom`); values base64 in `data`. */
export function renderEnvSecret(
  tool: string,
  component: string,
  data: Readonly<Record<string, string>>,
): Rendered<V1Secret> {
  validateToolName(tool);
  validateComponentName(component);
  const encoded: Record<string, string> = {};
  for (const name of Object.keys(data).sort()) {
    validateEnvName(name);
    encoded[name] = Buffer.from(data[name]!, "utf8").toString("base64");
  }
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: meta(envSecretName(component), namespaceName(tool), {
      ...toolLabels(tool),
      ...selectorLabels(tool, component),
    }),
    type: "Opaque",
    data: encoded,
  };
}

function deploymentStrategy(w: WebserviceWorkload | WorkerWorkload, replicas: number): V1DeploymentStrategy {
  // A single worker is replaced, never doubled: two copies of a bot may do its work twice. Webservices
  // always roll, because a new release must start beside the old one and take traffic only when ready.
  if (w.kind === "continuous-worker" && replicas === 1) return { type: "Recreate" };
  return { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } };
}

function renderDeployment(w: WebserviceWorkload | WorkerWorkload, namespace: string): Rendered<V1Deployment> {
  const replicas = w.replicas ?? 1;
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(w.component, namespace, workloadLabels(w)),
    spec: {
      replicas,
      selector: { matchLabels: selectorLabels(w.tool, w.component) },
      strategy: deploymentStrategy(w, replicas),
      progressDeadlineSeconds: PROGRESS_DEADLINE_SECONDS,
      revisionHistoryLimit: REVISION_HISTORY_LIMIT,
      template: podTemplate(w, "Always"),
    },
  };
}

function renderService(
  w: WebserviceWorkload | WorkerWorkload,
  namespace: string,
  port: number,
): Rendered<V1Service> {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(w.component, namespace, workloadLabels(w)),
    spec: {
      type: "ClusterIP",
      // The role label keeps a Job's pods of the same component (e.g. a one-off) out of the endpoints.
      selector: { ...selectorLabels(w.tool, w.component), [LABELS.component]: roleOf(w.kind) },
      ports: [{ name: PORT_NAME, port, targetPort: PORT_NAME, protocol: "TCP" }],
    },
  };
}

/** The host a tool's webservices are served on. */
export function toolHost(tool: string, options: RenderOptions): string {
  return `${tool}.${options.domain}`;
}

function renderIngress(
  w: WebserviceWorkload,
  namespace: string,
  options: RenderOptions,
): Rendered<V1Ingress> {
  const host = toolHost(w.tool, options);
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: meta(w.component, namespace, workloadLabels(w)),
    spec: {
      ingressClassName: options.ingressClassName,
      ...(options.tlsSecretName ? { tls: [{ hosts: [host], secretName: options.tlsSecretName }] } : {}),
      rules: [
        {
          host,
          http: {
            paths: [
              {
                path: w.publish ?? "/",
                pathType: "Prefix",
                backend: { service: { name: w.component, port: { name: PORT_NAME } } },
              },
            ],
          },
        },
      ],
    },
  };
}

function jobSpec(w: ScheduledWorkload | OneOffWorkload): V1JobSpec {
  return {
    backoffLimit: w.retry ?? 0,
    ...(w.timeout !== undefined ? { activeDeadlineSeconds: w.timeout } : {}),
    ttlSecondsAfterFinished: JOB_TTL_SECONDS,
    template: podTemplate(w, "Never"),
  };
}

function renderCronJob(w: ScheduledWorkload, namespace: string): Rendered<V1CronJob> {
  return {
    apiVersion: "batch/v1",
    kind: "CronJob",
    metadata: meta(boundedName(w.component, MAX_CRONJOB_NAME), namespace, workloadLabels(w), {
      [ANNOTATIONS.schedule]: w.schedule,
    }),
    spec: {
      schedule: expandSchedule(w.schedule, w.tool, w.component),
      concurrencyPolicy: "Forbid",
      startingDeadlineSeconds: CRON_STARTING_DEADLINE_SECONDS,
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 1,
      jobTemplate: { metadata: { labels: workloadLabels(w) }, spec: jobSpec(w) },
    },
  };
}

/** One-off Jobs are named per release (`<component>-<release id>`): a Job's pod template is immutable. */
export function oneOffJobName(w: Pick<OneOffWorkload, "component" | "releaseId">): string {
  return boundedName(`${w.component}-${w.releaseId.toLowerCase()}`);
}

function renderJob(w: OneOffWorkload, namespace: string): Rendered<V1Job> {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: meta(oneOffJobName(w), namespace, workloadLabels(w)),
    spec: jobSpec(w),
  };
}

/**
 * The objects one component runs as, in namespace `tool-<tool>`. Validates the workload first and
 * throws InputError naming the field at fault.
 */
export function renderWorkload(w: ToolWorkload, options: RenderOptions): KubernetesObject[] {
  validateWorkload(w);
  validateOptions(options);
  const namespace = namespaceName(w.tool);
  switch (w.kind) {
    case "continuous-webservice": {
      const port = workloadPort(w)!;
      return [
        renderDeployment(w, namespace),
        renderService(w, namespace, port),
        renderIngress(w, namespace, options),
      ];
    }
    case "continuous-worker": {
      const port = workloadPort(w);
      return port === undefined
        ? [renderDeployment(w, namespace)]
        : [renderDeployment(w, namespace), renderService(w, namespace, port)];
    }
    case "scheduled":
      return [renderCronJob(w, namespace)];
    case "one-off":
      return [renderJob(w, namespace)];
  }
}

const KIND_ORDER = [
  "Namespace",
  "ResourceQuota",
  "LimitRange",
  "NetworkPolicy",
  "Secret",
  "Service",
  "Deployment",
  "CronJob",
  "Job",
  "Ingress",
];

function rank(kind: string): number {
  const i = KIND_ORDER.indexOf(kind);
  return i === -1 ? KIND_ORDER.length : i;
}

/** Orders objects as `kubectl apply` would want them (namespace and quota first), then by name. */
export function sortObjects(objects: readonly KubernetesObject[]): KubernetesObject[] {
  return [...objects].sort(
    (a, b) =>
      rank(a.kind) - rank(b.kind) ||
      (a.metadata.namespace ?? "").localeCompare(b.metadata.namespace ?? "") ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
}

export interface ToolManifest {
  readonly tool: string;
  readonly quota?: Partial<ToolQuota> | undefined;
  readonly workloads: readonly ToolWorkload[];
}

/**
 * Everything a tool runs as, for `slipway render <tool>` and for the adapter: namespace, quota and
 * each component's objects, in a stable order. Env Secrets are not included (their values do not
 * belong in a review; render them with `renderEnvSecret`). Rejects two components with the same name,
 * two objects that would get the same name, and two webservices publishing the same path.
 */
export function renderAll(manifest: ToolManifest, options: RenderOptions): KubernetesObject[] {
  const components = new Set<string>();
  const paths = new Map<string, string>();
  for (const w of manifest.workloads) {
    if (w.tool !== manifest.tool) {
      throw new InputError(`component "${w.component}" belongs to tool "${w.tool}", not "${manifest.tool}"`, {
        details: { field: "tool" },
      });
    }
    if (components.has(w.component)) {
      throw new InputError(`component "${w.component}" is defined twice`, {
        details: { field: "component" },
      });
    }
    components.add(w.component);
    if (w.kind === "continuous-webservice") {
      const path = w.publish ?? "/";
      const other = paths.get(path);
      if (other) {
        throw new InputError(
          `components "${other}" and "${w.component}" both publish ${path} on ${toolHost(w.tool, options)}`,
          {
            details: { field: "publish" },
          },
        );
      }
      paths.set(path, w.component);
    }
  }
  const objects = [
    ...renderNamespace(manifest.tool, manifest.quota, options),
    ...manifest.workloads.flatMap((w) => renderWorkload(w, options)),
  ];
  const seen = new Set<string>();
  for (const o of objects) {
    const key = `${o.kind}/${o.metadata.name}`;
    if (seen.has(key)) {
      throw new InputError(`two components of tool "${manifest.tool}" would both create ${key}; rename one`, {
        details: { field: "component" },
      });
    }
    seen.add(key);
  }
  return sortObjects(objects);
}
