// Types only: erased at compile time, so the domain does not load the Kubernetes client.
import { JOB_COMMAND_WRAPPER } from "../jobs/runtime.js";
import type { V1Job, V1Secret } from "@kubernetes/client-node";
import { validateWorkload, type OneOffWorkload } from "./model.js";
import { LABELS, boundedName, namespaceName, toolLabels } from "./names.js";
import { podTemplate } from "./pod.js";
import { JOB_TTL_SECONDS, type Rendered } from "./render.js";

/**
 * Labels of the objects the job runner creates (one Job and maybe one Secret per run), besides the
 * `app.kubernetes.io/*` and `slipway.dev/*` scheme of every workload. `runner` names the Slipway
 * installation whose runner made them, so that its clean-up never deletes another one's runs.
 */
export const RUN_LABELS = {
  job: "slipway.dev/job",
  run: "slipway.dev/run",
  runner: "slipway.dev/runner",
} as const;

/** `app.kubernetes.io/component` of a runner's pods: never `webservice` or `worker`, so no Service selects them. */
export const JOB_RUN_ROLE = "job";

/** One run of a job (`slipway jobs …`), as the runner hands it to the cluster. */
export interface JobRunSpec {
  readonly tool: string;
  readonly job: string;
  readonly runId: string;
  /** `<registry>/<repo>@sha256:…` */
  readonly image: string;
  /** A Procfile process type (`worker`) or a shell command line. */
  readonly command: string;
  readonly env: Readonly<Record<string, string>>;
  readonly memoryMb: number;
  readonly releaseId: string;
  readonly commit: string;
  /** Value of `slipway.dev/runner`. */
  readonly runner: string;
}

/** `<job>-<run id>`, shortened with a hash when longer than a label. Run ids are lowercase base32. */
export function jobRunName(job: string, runId: string): string {
  return boundedName(`${job}-${runId.toLowerCase()}`);
}

export function jobRunSecretName(job: string, runId: string): string {
  return boundedName(`${jobRunName(job, runId)}-env`);
}

/** The selector of everything one runner created: Jobs, their pods, their Secrets. */
export function runnerSelector(runner: string): string {
  return `${LABELS.managedBy}=slipway,${RUN_LABELS.runner}=${runner}`;
}

function runLabels(s: JobRunSpec, workload: Record<string, string>): Record<string, string> {
  const labels = {
    ...workload,
    [LABELS.component]: JOB_RUN_ROLE,
    [RUN_LABELS.job]: s.job,
    [RUN_LABELS.run]: s.runId,
    [RUN_LABELS.runner]: s.runner,
  };
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

/**
 * One run as a batch/v1 Job in `tool-<tool>`, with the pod every workload gets (pod.ts: non-root, no
 * capabilities, seccomp RuntimeDefault, read-only root with a /tmp emptyDir, no service account
 * token), and its env in a Secret of its own (never as plain values in the Job). `backoffLimit: 0`
 * and no `activeDeadlineSeconds`: Slipway's runner retries and times out runs itself, so that each
 * attempt is its own run with its own log. The TTL is only a safety net: the runner deletes the Job
 * once it has read the output.
 */
export function renderJobRun(s: JobRunSpec): { job: Rendered<V1Job>; secret?: Rendered<V1Secret> } {
  const names = Object.keys(s.env).sort();
  const w: OneOffWorkload = {
    kind: "one-off",
    tool: s.tool,
    component: s.job,
    image: s.image,
    command: { shell: s.command },
    memory: `${s.memoryMb}Mi`,
    env: names.length > 0 ? { names } : undefined,
    releaseId: s.releaseId,
    commit: s.commit,
  };
  // Names the tool, the job, the image and every env variable, or throws InputError naming the field.
  validateWorkload(w);
  const namespace = namespaceName(s.tool);
  const template = podTemplate(w, "Never");
  const labels = runLabels(s, template.metadata?.labels ?? {});
  const container = template.spec!.containers[0]!;
  const secretName = jobRunSecretName(s.job, s.runId);
  template.metadata = { ...template.metadata, labels };
  template.spec!.containers[0] = {
    ...container,
    command: ["/bin/sh", "-c", JOB_COMMAND_WRAPPER, "slipway-job", s.command],
    ...(container.envFrom ? { envFrom: [{ secretRef: { name: secretName, optional: false } }] } : {}),
  };
  const job: Rendered<V1Job> = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: jobRunName(s.job, s.runId), namespace, labels },
    spec: { backoffLimit: 0, ttlSecondsAfterFinished: JOB_TTL_SECONDS, template },
  };
  if (names.length === 0) return { job };
  const data: Record<string, string> = {};
  for (const n of names) data[n] = Buffer.from(s.env[n]!, "utf8").toString("base64");
  const secret: Rendered<V1Secret> = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: secretName, namespace, labels: { ...toolLabels(s.tool), ...pick(labels) } },
    type: "Opaque",
    data,
  };
  return { job, secret };
}

function pick(labels: Record<string, string>): Record<string, string> {
  const keep = [LABELS.tool, LABELS.workload, RUN_LABELS.job, RUN_LABELS.run, RUN_LABELS.runner];
  return Object.fromEntries(Object.entries(labels).filter(([k]) => (keep as string[]).includes(k)));
}
