import { LABELS } from "./names.js";
import type { KubernetesObject } from "./render.js";

/**
 * What a tool namespace lets its pods have: the LimitRanges (per container or pod) and the
 * ResourceQuotas (the namespace's total), in wire form. Slipway renders one of each
 * (`renderNamespace`); an operator may add more, and every one of them is enforced by the API server.
 */
export interface LimitPolicy {
  readonly limitRanges: readonly {
    readonly name: string;
    readonly limits: readonly {
      readonly type?: string | undefined;
      readonly max?: Readonly<Record<string, string>> | undefined;
      readonly min?: Readonly<Record<string, string>> | undefined;
    }[];
  }[];
  readonly quotas: readonly { readonly name: string; readonly hard: Readonly<Record<string, string>> }[];
}

/** The LimitRanges and ResourceQuotas among rendered objects. */
export function policyOf(objects: readonly KubernetesObject[]): LimitPolicy {
  const limitRanges: LimitPolicy["limitRanges"][number][] = [];
  const quotas: LimitPolicy["quotas"][number][] = [];
  for (const o of objects) {
    if (o.kind === "LimitRange" && "spec" in o && o.spec && "limits" in o.spec) {
      limitRanges.push({ name: o.metadata.name, limits: o.spec.limits });
    }
    if (o.kind === "ResourceQuota" && "spec" in o && o.spec && "hard" in o.spec) {
      quotas.push({ name: o.metadata.name, hard: o.spec.hard ?? {} });
    }
  }
  return { limitRanges, quotas };
}

/**
 * The policy pods will meet once `rendered` is applied: Slipway's own objects replace the live ones of
 * the same name; the live ones it does not render (an operator's) stay.
 */
export function effectivePolicy(rendered: LimitPolicy, live: LimitPolicy): LimitPolicy {
  const ours = new Set(rendered.limitRanges.map((l) => l.name));
  const ourQuotas = new Set(rendered.quotas.map((q) => q.name));
  return {
    limitRanges: [...rendered.limitRanges, ...live.limitRanges.filter((l) => !ours.has(l.name))],
    quotas: [...rendered.quotas, ...live.quotas.filter((q) => !ourQuotas.has(q.name))],
  };
}

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const QUANTITY =
  /^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;

/** A Kubernetes quantity in base units (cores, bytes, a count), or undefined when it is not one. */
export function parseQuantity(quantity: string | number): number | undefined {
  const m = QUANTITY.exec(String(quantity).trim());
  if (!m) return undefined;
  const value = Number(m[1]) * 10 ** Number(m[2] ?? 0) * (SUFFIX[m[3] ?? ""] ?? 1);
  return Number.isFinite(value) ? value : undefined;
}

type Resource = "cpu" | "memory";

function show(resource: Resource, value: number): string {
  if (resource === "cpu") {
    const millis = Math.round(value * 1000);
    if (millis % 1000 === 0) return `${millis / 1000} ${millis === 1000 ? "CPU" : "CPUs"}`;
    return `${millis}m CPU`;
  }
  const bytes = Math.ceil(value);
  for (const [suffix, factor] of [
    ["Gi", 2 ** 30],
    ["Mi", 2 ** 20],
    ["Ki", 2 ** 10],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${suffix}`;
  }
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)}Mi` : `${bytes} bytes`;
}

interface PodShape {
  readonly component: string;
  readonly kind: string;
  /** Pods it runs at once: replicas, plus the one a rolling update adds (maxSurge 1). */
  readonly steady: number;
  readonly surge: number;
  /** Per container: limits and requests, base units. */
  readonly containers: readonly {
    readonly limits: Partial<Record<Resource, { text: string; value: number }>>;
    readonly requests: Partial<Record<Resource, number>>;
  }[];
}

interface Container {
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
}
interface Template {
  spec?: { containers?: Container[]; initContainers?: Container[] };
}

function shapeOf(o: KubernetesObject): PodShape | undefined {
  const component = o.metadata.labels?.[LABELS.workload] ?? o.metadata.name;
  let template: Template | undefined;
  let steady = 1;
  let surge = 0;
  const spec = (o as { spec?: Record<string, unknown> }).spec;
  switch (o.kind) {
    case "Deployment": {
      const d = spec as
        | {
            replicas?: number;
            template?: Template;
            strategy?: { type?: string; rollingUpdate?: { maxSurge?: number | string } };
          }
        | undefined;
      template = d?.template;
      steady = d?.replicas ?? 1;
      if (d?.strategy?.type !== "Recreate") {
        const s = d?.strategy?.rollingUpdate?.maxSurge ?? 1;
        surge =
          typeof s === "number"
            ? s
            : Math.max(1, Math.ceil((steady * (parseQuantity(s.replace("%", "")) ?? 25)) / 100));
      }
      break;
    }
    case "CronJob":
      template = (spec as { jobTemplate?: { spec?: { template?: Template } } } | undefined)?.jobTemplate?.spec
        ?.template;
      break;
    case "Job":
      template = (spec as { template?: Template } | undefined)?.template;
      break;
    default:
      return undefined;
  }
  const containers = [...(template?.spec?.containers ?? []), ...(template?.spec?.initContainers ?? [])].map(
    (c) => {
      const limits: PodShape["containers"][number]["limits"] = {};
      const requests: PodShape["containers"][number]["requests"] = {};
      for (const r of ["cpu", "memory"] as const) {
        const l = c.resources?.limits?.[r];
        const lv = l === undefined ? undefined : parseQuantity(l);
        if (l !== undefined && lv !== undefined) limits[r] = { text: l, value: lv };
        const q = c.resources?.requests?.[r];
        const qv = q === undefined ? lv : parseQuantity(q);
        if (qv !== undefined) requests[r] = qv;
      }
      return { limits, requests };
    },
  );
  return { component, kind: o.kind, steady, surge, containers };
}

const FIELD: Record<Resource, string> = { cpu: "run.cpu", memory: "run.memory" };

/**
 * Why the API server would refuse the pods of `objects` in `namespace` under `policy`, one line per
 * problem, each starting with what to change; empty when they fit. Checked: each container's limit
 * against every LimitRange's `max` and its request against `min` (per Container, and per Pod for a
 * pod's sum), and each ResourceQuota's cpu, memory and pod totals against what the Deployments need at
 * a rolling update's peak (every replica plus the extra pod each rolling Deployment starts), and against
 * what they need with one run of each CronJob or Job beside them. Not checked: `maxLimitRequestRatio`,
 * `default*` and resources other than cpu and memory; the rollout watch reports those from the server.
 */
export function limitProblems(
  namespace: string,
  objects: readonly KubernetesObject[],
  policy: LimitPolicy,
): string[] {
  const shapes = objects.map(shapeOf).filter((s): s is PodShape => s !== undefined);
  const problems: string[] = [];
  for (const s of shapes) {
    for (const range of policy.limitRanges) {
      for (const item of range.limits) {
        const type = item.type ?? "Container";
        if (type !== "Container" && type !== "Pod") continue;
        const units =
          type === "Container"
            ? s.containers
            : [
                {
                  limits: sumLimits(s.containers),
                  requests: sumRequests(s.containers),
                },
              ];
        for (const r of ["cpu", "memory"] as const) {
          const max = item.max?.[r] === undefined ? undefined : parseQuantity(item.max[r]);
          const min = item.min?.[r] === undefined ? undefined : parseQuantity(item.min[r]);
          for (const u of units) {
            const limit = u.limits[r];
            if (max !== undefined && limit && limit.value > max) {
              problems.push(
                `components.${s.component}.${FIELD[r]} is ${limit.text} but ${namespace} allows at most ${show(r, max)} per ${type === "Container" ? "container" : "pod"}: lower ${FIELD[r]} to ${show(r, max)} or less (LimitRange ${range.name})`,
              );
            }
            const request = u.requests[r];
            if (min !== undefined && request !== undefined && request < min) {
              problems.push(
                `components.${s.component}.${FIELD[r]} asks for ${show(r, request)} but ${namespace} needs at least ${show(r, min)} per ${type === "Container" ? "container" : "pod"}: raise ${FIELD[r]} to ${show(r, min)} or more (LimitRange ${range.name})`,
              );
            }
          }
        }
      }
    }
  }
  const deployments = shapes.filter((s) => s.kind === "Deployment");
  const runs = shapes.filter((s) => s.kind !== "Deployment");
  for (const quota of policy.quotas) {
    const peak = quotaProblem(
      namespace,
      quota,
      deployments,
      (s) => s.steady + s.surge,
      "at a rollout's peak",
    );
    if (peak) {
      problems.push(peak);
      continue;
    }
    for (const run of runs) {
      const beside = quotaProblem(
        namespace,
        quota,
        [...deployments, run],
        (s) => (s === run ? 1 : s.steady),
        `while ${run.component} runs`,
      );
      if (beside) {
        problems.push(beside);
        break;
      }
    }
  }
  return problems;
}

function sumLimits(containers: PodShape["containers"]): PodShape["containers"][number]["limits"] {
  const out: PodShape["containers"][number]["limits"] = {};
  for (const r of ["cpu", "memory"] as const) {
    const values = containers.map((c) => c.limits[r]);
    if (values.length && values.every((v) => v !== undefined)) {
      const value = values.reduce((a, v) => a + v.value, 0);
      out[r] = { text: values.length === 1 ? values[0]!.text : show(r, value), value };
    }
  }
  return out;
}

function sumRequests(containers: PodShape["containers"]): PodShape["containers"][number]["requests"] {
  const out: PodShape["containers"][number]["requests"] = {};
  for (const r of ["cpu", "memory"] as const) {
    const values = containers.map((c) => c.requests[r]);
    if (values.length && values.every((v) => v !== undefined)) out[r] = values.reduce((a, v) => a + v, 0);
  }
  return out;
}

/** Quota keys Slipway can total from pod templates: key → [resource, limits or requests]. */
const QUOTA_KEYS: Record<string, [Resource | "pods", "limits" | "requests"]> = {
  "limits.cpu": ["cpu", "limits"],
  "limits.memory": ["memory", "limits"],
  "requests.cpu": ["cpu", "requests"],
  "requests.memory": ["memory", "requests"],
  cpu: ["cpu", "requests"],
  memory: ["memory", "requests"],
  pods: ["pods", "requests"],
};

function quotaProblem(
  namespace: string,
  quota: LimitPolicy["quotas"][number],
  shapes: readonly PodShape[],
  pods: (s: PodShape) => number,
  when: string,
): string | undefined {
  for (const [key, [resource, side]] of Object.entries(QUOTA_KEYS)) {
    const hardText = quota.hard[key];
    const hard = hardText === undefined ? undefined : parseQuantity(hardText);
    if (hard === undefined) continue;
    const parts = shapes.map((s) => {
      const n = pods(s);
      if (resource === "pods") return { s, n, each: 1 };
      const each = s.containers.reduce(
        (a, c) => a + (side === "limits" ? (c.limits[resource]?.value ?? 0) : (c.requests[resource] ?? 0)),
        0,
      );
      return { s, n, each };
    });
    const total = parts.reduce((a, p) => a + p.n * p.each, 0);
    if (total <= hard * (1 + 1e-9)) continue;
    const fmt = (v: number) => (resource === "pods" ? String(v) : show(resource, v));
    const detail = parts
      .filter((p) => p.n > 0)
      .map((p) => `${p.s.component}: ${p.n} ${p.n === 1 ? "pod" : "pods"} × ${fmt(p.each)}`)
      .join(", ");
    const change = resource === "pods" ? "run.replicas" : `${FIELD[resource]} or run.replicas`;
    return `the components need ${fmt(total)} of ${key} ${when} but ${namespace}'s quota allows ${fmt(hard)}: lower ${change} (${detail}${
      shapes.some((s) => s.surge > 0 && pods(s) > s.steady)
        ? "; a rolling update runs one extra pod per Deployment"
        : ""
    }; ResourceQuota ${quota.name})`;
  }
  return undefined;
}
