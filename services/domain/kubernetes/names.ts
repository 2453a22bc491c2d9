import { createHash } from "node:crypto";
import type { ToolWorkload, WorkloadKind } from "./model.js";

/** Longest name of most objects and of a label value (RFC 1123 label). */
export const MAX_NAME = 63;
/**
 * Longest CronJob name: the controller appends `-<11 digits>` to name each Job, and that Job name must
 * stay a 63-character label.
 */
export const MAX_CRONJOB_NAME = 52;

export const LABELS = {
  name: "app.kubernetes.io/name",
  instance: "app.kubernetes.io/instance",
  component: "app.kubernetes.io/component",
  partOf: "app.kubernetes.io/part-of",
  managedBy: "app.kubernetes.io/managed-by",
  version: "app.kubernetes.io/version",
  tool: "slipway.dev/tool",
  workload: "slipway.dev/component",
  release: "slipway.dev/release",
  commit: "slipway.dev/commit",
} as const;

export const ANNOTATIONS = {
  commit: "slipway.dev/commit",
  schedule: "slipway.dev/schedule",
  envNames: "slipway.dev/env-names",
  envChecksum: "slipway.dev/env-checksum",
} as const;

export const MANAGED_BY = "slipway";

/**
 * Shortens `name` to at most `max` characters, deterministically: a name that fits is unchanged; a
 * longer one keeps its start and ends in `-` + 8 hex characters of the SHA-256 of the full name, so two
 * long names that share a prefix still get different results. `name` must already consist of
 * DNS-1123 characters.
 */
export function boundedName(name: string, max = MAX_NAME): string {
  if (name.length <= max) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 8);
  const head = name.slice(0, max - hash.length - 1).replace(/[-.]+$/, "");
  return `${head}-${hash}`;
}

export function namespaceName(tool: string): string {
  return boundedName(`tool-${tool}`);
}

export function envSecretName(component: string): string {
  return boundedName(`${component}-env`);
}

/** What `app.kubernetes.io/component` says about a workload (Toolforge uses the object type there). */
export function roleOf(kind: WorkloadKind): string {
  switch (kind) {
    case "continuous-webservice":
      return "webservice";
    case "continuous-worker":
      return "worker";
    case "scheduled":
      return "scheduled";
    case "one-off":
      return "one-off";
  }
}

/** Labels every object of a tool carries, including the namespace. */
export function toolLabels(tool: string): Record<string, string> {
  return {
    [LABELS.partOf]: tool,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.tool]: tool,
  };
}

/**
 * The labels that pick a component's pods. They must never change for the life of the component:
 * a Deployment's selector is immutable, so nothing release-specific (release id, commit) and nothing
 * that may change with the config (kind, replicas) is in here.
 */
export function selectorLabels(tool: string, component: string): Record<string, string> {
  return {
    [LABELS.tool]: tool,
    [LABELS.workload]: component,
  };
}

function commitLabel(commit: string): string {
  // SHA-256 commit ids are 64 characters, one more than a label value may be; the annotation keeps it whole.
  return commit.slice(0, MAX_NAME);
}

/** All labels of a component's objects and pods, sorted by key so a review reads the same every time. */
export function workloadLabels(w: ToolWorkload): Record<string, string> {
  const labels: Record<string, string> = {
    [LABELS.name]: w.component,
    [LABELS.instance]: boundedName(`${w.tool}-${w.component}`),
    [LABELS.component]: roleOf(w.kind),
    ...toolLabels(w.tool),
    [LABELS.version]: w.releaseId,
    ...selectorLabels(w.tool, w.component),
    [LABELS.release]: w.releaseId,
    [LABELS.commit]: commitLabel(w.commit),
  };
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}
