import { setTimeout as sleep } from "node:timers/promises";
import {
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  AuthorizationV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  RbacAuthorizationV1Api,
  type CoreV1Event,
  type KubernetesObject as ClientObject,
  type V1Deployment,
  type V1Job,
  type V1Namespace,
  type V1Pod,
} from "@kubernetes/client-node";
// Not re-exported by the package index; the package has no "exports" map, so the file is reachable.
import { ObjectSerializer } from "@kubernetes/client-node/dist/serializer.js";
import { getSerializationType } from "@kubernetes/client-node/dist/util.js";
import {
  LABELS,
  MANAGED_BY,
  RUN_LABELS,
  namespaceName,
  toolLabels,
  type KubernetesObject,
  type LimitPolicy,
} from "../../domain/kubernetes/index.js";
import { PipelineError, SlipwayError, TransientError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import {
  creationFailureKind,
  creationFailureText,
  describePods,
  newestReplicaSet,
  replicaFailure,
  rolloutState,
  warningEvents,
} from "./rollout.js";

/** The field manager Slipway applies as; `kubectl` shows it in `metadata.managedFields`. */
export const FIELD_MANAGER = "slipway";

/**
 * Apply order: what others refer to or are limited by comes first (the namespace, its quota and
 * limits, the Secret pods read, the Service an Ingress points at), then workloads. Kinds not listed
 * go last.
 */
export const APPLY_ORDER = [
  "Namespace",
  "ResourceQuota",
  "LimitRange",
  "NetworkPolicy",
  "Secret",
  "Service",
  "Deployment",
  "Ingress",
  "CronJob",
  "Job",
] as const;

/**
 * Kinds pruned when a tool no longer renders them (a component was removed or renamed). Jobs are not:
 * a running one-off of an earlier release is left to finish and expires by its TTL. The namespace,
 * quota, limits and network policy are always rendered.
 */
export const PRUNED_KINDS = [
  { apiVersion: "v1", kind: "Secret" },
  { apiVersion: "v1", kind: "Service" },
  { apiVersion: "apps/v1", kind: "Deployment" },
  { apiVersion: "networking.k8s.io/v1", kind: "Ingress" },
  { apiVersion: "batch/v1", kind: "CronJob" },
] as const;

/**
 * Who Slipway is to the API server: the subject of the RoleBinding it makes in each tool namespace
 * (`SLIPWAY_KUBE_SUBJECT`). See infra/kubernetes/rbac/.
 */
export interface KubeSubject {
  readonly kind: "ServiceAccount" | "User" | "Group";
  readonly name: string;
  /** Only for a ServiceAccount. */
  readonly namespace?: string | undefined;
}

/** The ClusterRole of what Slipway may do inside a tool namespace, and the RoleBinding granting it there. */
export const TOOL_ROLE = "slipway-tool";
export const TOOL_ROLE_BINDING = "slipway";

/** How long a new RoleBinding may take to reach the API server's authorizer cache. */
const BINDING_WAIT_MS = 15_000;

function hasStatus(error: unknown, code: number): boolean {
  return error instanceof ApiException && (error as ApiException<unknown>).code === code;
}

/** Managers whose fields Slipway takes over when they conflict: earlier Slipway versions and create/replace. */
const OUR_MANAGERS = [/^slipway/, /^before-first-apply$/];

export interface ObjectRef {
  readonly kind: string;
  readonly namespace?: string | undefined;
  readonly name: string;
}

export interface AppliedObject extends ObjectRef {
  readonly generation?: number | undefined;
  readonly resourceVersion?: string | undefined;
}

export interface ApplyResult {
  readonly applied: readonly AppliedObject[];
  readonly pruned: readonly ObjectRef[];
}

export interface RolloutOptions {
  readonly timeoutS: number;
  readonly signal?: AbortSignal | undefined;
  /** Between two reads of the Deployment's status; default 2 s. */
  readonly pollMs?: number | undefined;
  /** How long pods refused for an exceeded quota may stay refused before the rollout fails; default 30 s. */
  readonly quotaGraceMs?: number | undefined;
}

/** A quota used up by something that ends (a job's pod) frees up; one that stays used up this long fails. */
export const QUOTA_GRACE_MS = 30_000;

const REVISION = "deployment.kubernetes.io/revision";

/**
 * What serves while a Deployment's rollout failed, when the Deployment itself can tell: a rolling
 * update keeps the previous pods until new ones are ready; Recreate (single workers) stopped them.
 * Undefined when it had no previous pods (its first revision), so the caller says what the tool had.
 */
function previousPods(d: V1Deployment): string | undefined {
  if (d.spec?.strategy?.type === "Recreate") {
    return Number(d.metadata?.annotations?.[REVISION] ?? 1) > 1
      ? "the previous pods were stopped before the new ones started (Recreate)"
      : undefined;
  }
  const old = (d.status?.replicas ?? 0) - (d.status?.updatedReplicas ?? 0);
  return old > 0 ? "the previous pods keep serving" : undefined;
}

function refOf(o: { kind?: string; metadata?: { name?: string; namespace?: string } }): ObjectRef {
  return { kind: o.kind ?? "?", namespace: o.metadata?.namespace, name: o.metadata?.name ?? "?" };
}

export function describeRef(r: ObjectRef): string {
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ""}${r.name}`;
}

function rank(kind: string): number {
  const i = (APPLY_ORDER as readonly string[]).indexOf(kind);
  return i === -1 ? APPLY_ORDER.length : i;
}

/** Rendered objects in apply order (stable within a kind). */
export function applyOrder(objects: readonly KubernetesObject[]): KubernetesObject[] {
  return [...objects].sort(
    (a, b) => rank(a.kind) - rank(b.kind) || a.metadata.name.localeCompare(b.metadata.name),
  );
}

/**
 * client-node serialises a patch body through its typed models, which use in-memory names where the
 * wire name is a reserved word (LimitRangeItem `default` is `_default`) and drop what they do not
 * know. Rendered objects are in wire form, so they are first read into the typed form; the patch
 * then writes them back exactly as rendered (the adapter test checks the bodies the server gets).
 */
function toClientForm(o: KubernetesObject): ClientObject {
  return ObjectSerializer.deserialize(o, getSerializationType(o.apiVersion, o.kind)) as ClientObject;
}

/** The Kubernetes `Status` an API error carries, when it carries one. */
function statusOf(error: ApiException<unknown>): {
  message?: string;
  reason?: string;
  details?: { causes?: { type?: string; message?: string; field?: string }[] };
} {
  let body: unknown = error.body;
  if (typeof body === "string") {
    const text = body;
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      return { message: text.slice(0, 500) };
    }
  }
  return body && typeof body === "object" ? body : {};
}

/**
 * A Kubernetes API failure as a Slipway error a maintainer can act on, naming the object and what the
 * API server said. Server-side failures (5xx, 429) and unreachable clusters are transient.
 */
export function kubeError(action: string, ref: ObjectRef | string, error: unknown): SlipwayError {
  const what = typeof ref === "string" ? ref : describeRef(ref);
  if (error instanceof ApiException) {
    const code = (error as ApiException<unknown>).code;
    const status = statusOf(error as ApiException<unknown>);
    const detail = status.message ?? status.reason ?? `HTTP ${code}`;
    const message = `Kubernetes refused to ${action} ${what} (${code}${status.reason ? ` ${status.reason}` : ""}): ${detail}`;
    if (code >= 500 || code === 429) return new TransientError(message, { cause: error });
    return new PipelineError("deploy_failed", message, {
      cause: error,
      details: { phase: "deploy", object: what, status: code },
    });
  }
  return new TransientError(`cannot reach Kubernetes to ${action} ${what}: ${errorMessage(error)}`, {
    cause: error,
  });
}

/** Whether a namespace carries the labels Slipway gives the tool's namespace when it creates it. */
function isToolNamespace(ns: V1Namespace, tool: string): boolean {
  const labels = ns.metadata?.labels ?? {};
  return labels[LABELS.managedBy] === MANAGED_BY && labels[LABELS.tool] === tool;
}

/**
 * Applies a tool's rendered objects to a cluster with server-side apply, prunes what the tool no
 * longer renders, and waits for Deployments to roll out, explaining a stuck one from its pods.
 */
export class KubernetesApplier {
  private readonly objects: KubernetesObjectApi;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly batch: BatchV1Api;
  private readonly rbac: RbacAuthorizationV1Api;
  private readonly authorization: AuthorizationV1Api;
  private readonly subject: KubeSubject | undefined;
  /** Tool namespaces known to exist with their RoleBinding, so each is provisioned once per process. */
  private readonly bound = new Set<string>();

  /**
   * With `subject`, Slipway holds no right to patch namespaces in general (it could lower kube-system's
   * Pod Security level): a tool namespace is created once, bound to ClusterRole `slipway-tool` for
   * `subject`, and only then applied, through that binding. Without it, the Namespace is applied like
   * any object, which needs cluster-wide namespace patch rights (the HTTP double's tests).
   */
  constructor(
    kubeConfig: KubeConfig,
    private readonly logger: Logger,
    options: { readonly subject?: KubeSubject | undefined } = {},
  ) {
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    this.apps = kubeConfig.makeApiClient(AppsV1Api);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.batch = kubeConfig.makeApiClient(BatchV1Api);
    this.rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    this.authorization = kubeConfig.makeApiClient(AuthorizationV1Api);
    this.subject = options.subject;
  }

  /** In a pod: the service account's token and CA; elsewhere `~/.kube/config` (or `KUBECONFIG`). */
  static fromDefault(logger: Logger): KubernetesApplier {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    return new KubernetesApplier(kc, logger);
  }

  /**
   * Server-side applies `objects` (all of `tool`, in namespace `tool-<tool>`) in dependency order as
   * field manager `slipway`. A conflict with a field manager that is Slipway's own (an older Slipway,
   * or objects created before apply) is forced; a conflict with anyone else (someone ran `kubectl
   * edit`) fails naming the fields and the manager, so a hand change is not silently undone.
   * With `prune`, objects of the tool labelled `managed-by=slipway` that are not in `objects` are
   * deleted afterwards (see PRUNED_KINDS).
   */
  async apply(
    tool: string,
    objects: readonly KubernetesObject[],
    options: { prune?: boolean } = {},
  ): Promise<ApplyResult> {
    const namespace = namespaceName(tool);
    const log = this.logger.child({ tool, namespace });
    for (const o of objects) {
      const ns = o.kind === "Namespace" ? o.metadata.name : o.metadata.namespace;
      if (ns !== namespace) {
        throw new PipelineError("deploy_failed", `${describeRef(refOf(o))} is not in ${namespace}`, {
          details: { phase: "deploy" },
        });
      }
    }
    const ns = objects.find((o) => o.kind === "Namespace");
    if (ns) await this.provision(tool, ns);
    const applied: AppliedObject[] = [];
    for (const o of applyOrder(objects)) {
      const result = await this.applyOne(o);
      applied.push({
        ...refOf(o),
        generation: result.metadata?.generation,
        resourceVersion: result.metadata?.resourceVersion,
      });
      log.debug({ kind: o.kind, name: o.metadata.name }, "applied");
    }
    const pruned = options.prune ? await this.prune(tool, objects) : [];
    log.info({ applied: applied.length, pruned: pruned.length }, "objects applied");
    return { applied, pruned };
  }

  /**
   * Creates the tool's namespace unless it exists, and its RoleBinding to `slipway-tool`, waiting until
   * the API server honours it. Create, never patch: Slipway's cluster-wide rights on namespaces are
   * create and get, so it cannot relabel a namespace it has not bound (kube-system). A namespace of the
   * tool's name that Slipway did not make is refused, not taken over.
   */
  private async provision(tool: string, ns: KubernetesObject): Promise<void> {
    const namespace = ns.metadata.name;
    if (!this.subject || this.bound.has(namespace)) return;
    try {
      await this.core.createNamespace({ body: toClientForm(ns), fieldManager: FIELD_MANAGER });
      this.logger.info({ tool, namespace }, "created the tool's namespace");
    } catch (error) {
      if (!hasStatus(error, 409)) throw kubeError("create", { kind: "Namespace", name: namespace }, error);
      const existing = await this.readNamespace(namespace);
      if (existing && !isToolNamespace(existing, tool)) {
        throw new PipelineError(
          "deploy_failed",
          `namespace ${namespace} exists but was not made by Slipway for tool ${tool} (its labels ${LABELS.managedBy}=${MANAGED_BY} and ${LABELS.tool}=${tool} are missing): delete it or label it, then deploy again`,
          { details: { phase: "deploy", object: `Namespace ${namespace}` } },
        );
      }
    }
    await this.bind(tool, namespace);
  }

  /** The namespace, or undefined when it does not exist. */
  private async readNamespace(name: string): Promise<V1Namespace | undefined> {
    try {
      return await this.core.readNamespace({ name });
    } catch (error) {
      if (hasStatus(error, 404)) return undefined;
      throw kubeError("read", { kind: "Namespace", name }, error);
    }
  }

  /** The RoleBinding `slipway` in `namespace`: ClusterRole `slipway-tool` for Slipway's own subject. */
  private async bind(tool: string, namespace: string): Promise<void> {
    const subject = this.subject!;
    try {
      await this.rbac.createNamespacedRoleBinding({
        namespace,
        fieldManager: FIELD_MANAGER,
        body: {
          metadata: { name: TOOL_ROLE_BINDING, namespace, labels: toolLabels(tool) },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: TOOL_ROLE },
          subjects: [
            subject.kind === "ServiceAccount"
              ? { kind: "ServiceAccount", name: subject.name, namespace: subject.namespace }
              : { kind: subject.kind, name: subject.name, apiGroup: "rbac.authorization.k8s.io" },
          ],
        },
      });
      this.logger.info({ tool, namespace, role: TOOL_ROLE }, "bound Slipway's role in the tool's namespace");
    } catch (error) {
      // An existing binding is an earlier Slipway's (its name is Slipway's; a changed subject is the operator's to fix).
      if (!hasStatus(error, 409)) {
        throw kubeError("create", { kind: "RoleBinding", namespace, name: TOOL_ROLE_BINDING }, error);
      }
    }
    await this.waitForAccess(namespace);
    this.bound.add(namespace);
  }

  /** Until the authorizer lets Slipway patch `namespace` itself, which only the RoleBinding grants. */
  private async waitForAccess(namespace: string): Promise<void> {
    const deadline = Date.now() + BINDING_WAIT_MS;
    for (;;) {
      const review = await this.authorization
        .createSelfSubjectAccessReview({
          body: {
            spec: {
              resourceAttributes: { namespace, verb: "patch", resource: "namespaces", name: namespace },
            },
          },
        })
        .catch((error: unknown) => {
          throw kubeError("review its access to", `namespace ${namespace}`, error);
        });
      if (review.status?.allowed) return;
      if (Date.now() > deadline) {
        throw new TransientError(
          `RoleBinding ${namespace}/${TOOL_ROLE_BINDING} does not grant Slipway ClusterRole ${TOOL_ROLE} after ${BINDING_WAIT_MS / 1000} s: check that ${TOOL_ROLE} is installed (infra/kubernetes/rbac) and that SLIPWAY_KUBE_SUBJECT names Slipway's own account`,
        );
      }
      await sleep(200);
    }
  }

  /**
   * `list` in a tool namespace. Slipway's rights there come with the namespace (its RoleBinding), so a
   * refusal where the namespace does not exist means there is nothing; a namespace an earlier Slipway
   * made before it bound its namespaces is bound now, then listed again.
   */
  private async inToolNamespace<T>(tool: string, namespace: string, list: () => Promise<T[]>): Promise<T[]> {
    try {
      return await list();
    } catch (error) {
      if (!hasStatus(error, 403) || !this.subject) throw error;
      const existing = await this.readNamespace(namespace);
      if (!existing) return [];
      if (!isToolNamespace(existing, tool)) throw error;
      await this.bind(tool, namespace);
      return list();
    }
  }

  /** Objects of one kind in the tool's namespace, by label selector. */
  async listLabelled(
    tool: string,
    apiVersion: string,
    kind: string,
    labelSelector: string,
  ): Promise<ClientObject[]> {
    const namespace = namespaceName(tool);
    try {
      return await this.inToolNamespace(tool, namespace, async () => {
        const list = await this.objects.list(
          apiVersion,
          kind,
          namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          labelSelector,
        );
        return list.items;
      });
    } catch (error) {
      throw kubeError("list", `${kind} in ${namespace}`, error);
    }
  }

  private async applyOne(o: KubernetesObject): Promise<ClientObject> {
    const ref = refOf(o);
    const body = toClientForm(o);
    try {
      return await this.objects.patch(
        body,
        undefined,
        undefined,
        FIELD_MANAGER,
        false,
        PatchStrategy.ServerSideApply,
      );
    } catch (error) {
      if (!(error instanceof ApiException) || (error as ApiException<unknown>).code !== 409) {
        throw kubeError("apply", ref, error);
      }
      const causes = statusOf(error as ApiException<unknown>).details?.causes ?? [];
      const managers = causes.map((c) => /conflict with "([^"]+)"/.exec(c.message ?? "")?.[1]);
      const ours = managers.length > 0 && managers.every((m) => m && OUR_MANAGERS.some((re) => re.test(m)));
      if (!ours) {
        const fields = causes.map((c) => `${c.field ?? "?"} (${c.message ?? "conflict"})`).join(", ");
        throw new PipelineError(
          "deploy_failed",
          `${describeRef(ref)} was changed outside Slipway: ${fields || statusOf(error as ApiException<unknown>).message || "conflict"}. Undo the change (or delete the object) and deploy again`,
          { cause: error, details: { phase: "deploy", object: describeRef(ref) } },
        );
      }
      this.logger.info({ object: describeRef(ref), managers }, "taking over fields of an earlier Slipway");
      try {
        return await this.objects.patch(
          body,
          undefined,
          undefined,
          FIELD_MANAGER,
          true,
          PatchStrategy.ServerSideApply,
        );
      } catch (retry) {
        throw kubeError("apply", ref, retry);
      }
    }
  }

  /** Deletes the tool's Slipway-managed objects (of PRUNED_KINDS) that `keep` does not contain. */
  async prune(tool: string, keep: readonly KubernetesObject[]): Promise<ObjectRef[]> {
    const namespace = namespaceName(tool);
    const wanted = new Set(keep.map((o) => `${o.kind}/${o.metadata.name}`));
    const selector = `${LABELS.managedBy}=${MANAGED_BY},${LABELS.tool}=${tool}`;
    const pruned: ObjectRef[] = [];
    for (const { apiVersion, kind } of PRUNED_KINDS) {
      let items: ClientObject[];
      try {
        const list = await this.objects.list(
          apiVersion,
          kind,
          namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          selector,
        );
        items = list.items;
      } catch (error) {
        if (error instanceof ApiException && (error as ApiException<unknown>).code === 404) continue;
        throw kubeError("list", `${kind} in ${namespace}`, error);
      }
      for (const item of items) {
        const labels = item.metadata?.labels ?? {};
        // The selector already asked for these; checked again because deleting is not undoable.
        if (labels[LABELS.managedBy] !== MANAGED_BY || labels[LABELS.tool] !== tool) continue;
        // A job run's Secret belongs to the runner, which deletes it when the run ends; a deploy
        // during the run must not take the env from a pod that has not started yet.
        if (labels[RUN_LABELS.run] !== undefined) continue;
        const name = item.metadata?.name;
        if (!name || wanted.has(`${kind}/${name}`)) continue;
        const ref: ObjectRef = { kind, namespace, name };
        try {
          await this.objects.delete(
            { apiVersion, kind, metadata: { name, namespace } },
            undefined,
            undefined,
            undefined,
            undefined,
            "Background",
          );
        } catch (error) {
          if (error instanceof ApiException && (error as ApiException<unknown>).code === 404) continue;
          throw kubeError("delete", ref, error);
        }
        this.logger.info({ tool, object: describeRef(ref) }, "pruned an object the tool no longer renders");
        pruned.push(ref);
      }
    }
    return pruned;
  }

  /**
   * Polls the Deployment until its rollout is done. A rollout whose pods the API server refuses to
   * create (ReplicaFailure/FailedCreate: at once, or after `quotaGraceMs` for an exceeded quota), one
   * the controller gave up on (ProgressDeadlineExceeded), or one still not done after `timeoutS` fails
   * with a PipelineError whose first line says why (the server's own words for a refusal) and what
   * still serves, then one line per fact about the new pods (`details.pods` holds the same lines; not
   * `log_tail`, which the deployer would print a second time).
   */
  async waitForRollout(namespace: string, name: string, options: RolloutOptions): Promise<V1Deployment> {
    const ref: ObjectRef = { kind: "Deployment", namespace, name };
    const deadline = Date.now() + options.timeoutS * 1000;
    const pollMs = options.pollMs ?? 2000;
    let quotaSince: number | undefined;
    for (;;) {
      options.signal?.throwIfAborted();
      let deployment: V1Deployment;
      try {
        deployment = await this.apps.readNamespacedDeploymentStatus({ name, namespace });
      } catch (error) {
        throw kubeError("read", ref, error);
      }
      const state = rolloutState(deployment);
      if (state.done) return deployment;
      // Pods the API server refuses (LimitRange, Pod Security, quota) are never retried into existence
      // by waiting: the ReplicaSet says so at once, while the progress deadline takes 600 s.
      const refusal = await this.refusal(deployment);
      const kind = refusal === undefined ? undefined : creationFailureKind(refusal);
      quotaSince = kind === "quota" ? (quotaSince ?? Date.now()) : undefined;
      const refused =
        kind === "refused" ||
        (kind === "quota" && Date.now() - quotaSince! >= (options.quotaGraceMs ?? QUOTA_GRACE_MS));
      if (refused || state.stuck || Date.now() >= deadline) {
        const why = refused
          ? `Kubernetes refuses to create its pods: ${creationFailureText(refusal!)}`
          : state.stuck
            ? state.detail
            : `not rolled out within ${options.timeoutS} s (${state.detail})`;
        const pods = await this.diagnose(deployment).catch((error: unknown) => [
          `could not read the pods: ${errorMessage(error)}`,
        ]);
        const previous = previousPods(deployment);
        throw new PipelineError(
          "deploy_failed",
          `Deployment ${namespace}/${name}: ${why}${previous ? `; ${previous}` : ""}\n${pods.join("\n")}`,
          { details: { phase: "deploy", object: describeRef(ref), pods, refused } },
        );
      }
      // An abort ends the sleep early; the loop's first line then throws the signal's reason.
      await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())), undefined, {
        signal: options.signal,
      }).catch(() => undefined);
    }
  }

  /**
   * Why the Deployment's newest ReplicaSet cannot create pods, when its ReplicaFailure condition says
   * it cannot: the newest FailedCreate event's message (the condition keeps the first failure's words,
   * which may be a transient one), else the condition's.
   */
  private async refusal(deployment: V1Deployment): Promise<string | undefined> {
    const condition = replicaFailure(deployment);
    if (condition === undefined) return undefined;
    const namespace = deployment.metadata?.namespace ?? "default";
    const selector = Object.entries(deployment.spec?.selector.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    try {
      const sets = await this.apps.listNamespacedReplicaSet({ namespace, labelSelector: selector });
      const rs = newestReplicaSet(deployment, sets.items)?.metadata?.name;
      return (rs && (await this.creationFailure(namespace, "ReplicaSet", rs))) ?? condition;
    } catch (error) {
      this.logger.debug({ namespace, err: error }, "could not read the ReplicaSet's events");
      return condition;
    }
  }

  /**
   * The newest FailedCreate Warning event of a ReplicaSet or Job (its controller could not create a
   * pod: the API server's refusal, e.g. `Error creating: pods "web-…" is forbidden: maximum cpu usage
   * per Container is 2, but limit is 3`), or undefined when there is none.
   */
  async creationFailure(
    namespace: string,
    kind: "ReplicaSet" | "Job",
    name: string,
  ): Promise<string | undefined> {
    let events: CoreV1Event[];
    try {
      events = (
        await this.core.listNamespacedEvent({
          namespace,
          fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name},reason=FailedCreate`,
        })
      ).items;
    } catch (error) {
      throw kubeError("list", `events of ${kind} ${namespace}/${name}`, error);
    }
    const newest = warningEvents(events).at(-1);
    return newest ? (newest.message ?? "FailedCreate") : undefined;
  }

  /**
   * The LimitRanges and ResourceQuotas in force in a namespace, whoever made them (an operator may add
   * their own beside Slipway's). A namespace that does not exist yet has none.
   */
  async namespacePolicy(tool: string): Promise<LimitPolicy> {
    const namespace = namespaceName(tool);
    try {
      // A namespace not made yet (a first deploy) has no policy of its own; asking would only be refused,
      // since Slipway's rights there come with the namespace's RoleBinding.
      if (this.subject && !this.bound.has(namespace) && !(await this.readNamespace(namespace))) {
        return { limitRanges: [], quotas: [] };
      }
      const [ranges, quotas] = await Promise.all([
        this.inToolNamespace(
          tool,
          namespace,
          async () => (await this.core.listNamespacedLimitRange({ namespace })).items,
        ),
        this.inToolNamespace(
          tool,
          namespace,
          async () => (await this.core.listNamespacedResourceQuota({ namespace })).items,
        ),
      ]);
      return {
        limitRanges: ranges.map((l) => ({
          name: l.metadata?.name ?? "?",
          limits: (l.spec?.limits ?? []).map((i) => ({ type: i.type, max: i.max, min: i.min })),
        })),
        quotas: quotas.map((q) => ({ name: q.metadata?.name ?? "?", hard: q.spec?.hard ?? {} })),
      };
    } catch (error) {
      throw kubeError("list", `LimitRanges and ResourceQuotas in ${namespace}`, error);
    }
  }

  /** The newest ReplicaSet's pods, their container states and their Warning events, as report lines. */
  async diagnose(deployment: V1Deployment): Promise<string[]> {
    const namespace = deployment.metadata?.namespace ?? "default";
    const match = deployment.spec?.selector.matchLabels ?? {};
    const selector = Object.entries(match)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    const sets = await this.apps.listNamespacedReplicaSet({ namespace, labelSelector: selector });
    const rs = newestReplicaSet(deployment, sets.items);
    const hash = rs?.metadata?.labels?.["pod-template-hash"];
    const pods: V1Pod[] = (
      await this.core.listNamespacedPod({
        namespace,
        labelSelector: hash ? `${selector},pod-template-hash=${hash}` : selector,
      })
    ).items;
    const events: CoreV1Event[] = [];
    for (const pod of pods) {
      const name = pod.metadata?.name;
      if (!name) continue;
      const list = await this.core.listNamespacedEvent({
        namespace,
        fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${name}`,
      });
      events.push(...list.items);
    }
    if (rs?.metadata?.name) {
      // Pods the ReplicaSet could not even create (quota, Pod Security) show up on the ReplicaSet.
      const list = await this.core.listNamespacedEvent({
        namespace,
        fieldSelector: `involvedObject.kind=ReplicaSet,involvedObject.name=${rs.metadata.name}`,
      });
      events.push(...list.items);
    }
    return describePods(pods, events);
  }

  /** Last `tail` lines of a pod's container output (for failure reports). */
  async podLogs(namespace: string, pod: string, container: string, tail: number): Promise<string[]> {
    try {
      const text = await this.core.readNamespacedPodLog({ name: pod, namespace, container, tailLines: tail });
      return text.split("\n").filter((l, i, all) => l !== "" || i < all.length - 1);
    } catch (error) {
      throw kubeError("read the logs of", { kind: "Pod", namespace, name: pod }, error);
    }
  }

  async listPods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    try {
      return (await this.core.listNamespacedPod({ namespace, labelSelector })).items;
    } catch (error) {
      throw kubeError("list", `pods in ${namespace}`, error);
    }
  }

  /** The tool's Deployments, by label selector; never across namespaces (Slipway may not list there). */
  async listDeployments(tool: string, labelSelector: string): Promise<V1Deployment[]> {
    const namespace = namespaceName(tool);
    try {
      return await this.inToolNamespace(tool, namespace, async () => {
        return (await this.apps.listNamespacedDeployment({ namespace, labelSelector })).items;
      });
    } catch (error) {
      if (hasStatus(error, 404)) return [];
      throw kubeError("list", `deployments in ${namespace}`, error);
    }
  }

  async readJob(namespace: string, name: string): Promise<V1Job> {
    try {
      return await this.batch.readNamespacedJobStatus({ name, namespace });
    } catch (error) {
      throw kubeError("read", { kind: "Job", namespace, name }, error);
    }
  }

  /** Deletes one object; already gone is fine. */
  async remove(ref: ObjectRef & { apiVersion: string }): Promise<void> {
    try {
      await this.deleteOne(ref);
    } catch (error) {
      if (error instanceof ApiException && (error as ApiException<unknown>).code === 404) return;
      if (!hasStatus(error, 403) || !this.subject || ref.namespace === undefined) {
        throw kubeError("delete", ref, error);
      }
      // Slipway's rights in a tool namespace come with its RoleBinding: where the namespace does not
      // exist there is nothing to delete; one an earlier Slipway made unbound is bound, then retried.
      const existing = await this.readNamespace(ref.namespace);
      const tool = existing?.metadata?.labels?.[LABELS.tool];
      if (!existing) return;
      if (tool === undefined || !isToolNamespace(existing, tool)) throw kubeError("delete", ref, error);
      await this.bind(tool, ref.namespace);
      try {
        await this.deleteOne(ref);
      } catch (retryError) {
        if (hasStatus(retryError, 404)) return;
        throw kubeError("delete", ref, retryError);
      }
    }
  }

  private async deleteOne(ref: ObjectRef & { apiVersion: string }): Promise<void> {
    await this.objects.delete(
      {
        apiVersion: ref.apiVersion,
        kind: ref.kind,
        metadata: { name: ref.name, namespace: ref.namespace },
      },
      undefined,
      undefined,
      undefined,
      undefined,
      "Background",
    );
  }
}
