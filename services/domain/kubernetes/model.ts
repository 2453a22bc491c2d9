import { InputError } from "../../platform/errors.js";
import { WEB_PORT } from "../releases/deployer.js";
import { validateToolName } from "../tools/tool.js";

/**
 * What a tool's component runs as, and so which Kubernetes objects it becomes:
 * - `continuous-webservice`: Deployment + Service + Ingress at `<tool>.<domain><publish>`.
 * - `continuous-worker`: Deployment (+ a ClusterIP Service when it has a port, as Toolforge does for
 *   continuous jobs with `--port`; never an Ingress).
 * - `scheduled`: CronJob.
 * - `one-off`: Job.
 */
export type WorkloadKind = "continuous-webservice" | "continuous-worker" | "scheduled" | "one-off";

/**
 * How the container starts. Both forms go through the CNB launch environment that Slipway writes
 * into every image (`domain/lifecycle/launch.ts`):
 * - `{ process: "web" }` runs the Procfile (or buildpack) process type: `/cnb/process/web`.
 * - `{ shell: "python manage.py migrate" }` runs a command line: `/cnb/lifecycle/launcher "<cmd>"`,
 *   which runs it with `bash -c` in the app directory (Toolforge's `launcher <cmd>`).
 */
export type WorkloadCommand = { readonly process: string } | { readonly shell: string };

/**
 * How Kubernetes decides the process is alive and (for webservices) ready for traffic.
 * - `http`: GET `path` on the container's port must answer 2xx/3xx (needs a port).
 * - `script`: the command line, run through the launcher, must exit 0.
 * Without one, a component with a port gets a TCP check on it; one without a port gets no probes.
 */
export type HealthCheck =
  { readonly type: "http"; readonly path: string } | { readonly type: "script"; readonly script: string };

/**
 * Environment variables that come from the component's Secret (see `renderEnvSecret`). Only the
 * names are in the workload: values never pass through the rendered workload objects.
 */
export interface SecretEnv {
  /** The variable names the Secret holds; shown in an annotation so a review sees what changes. */
  readonly names: readonly string[];
  /**
   * `envChecksum(data)` of the Secret's values. It goes into a pod-template annotation, so changing a
   * value rolls the pods (Kubernetes does not restart pods when a Secret they read changes).
   */
  readonly checksum?: string | undefined;
}

interface WorkloadBase {
  /** Tool name: an RFC 1123 label of at most 52 characters; the namespace is `tool-<tool>`. */
  readonly tool: string;
  /**
   * Component name from `slipway.yaml` (`web` for a Procfile-only app). A DNS-1035 label (lowercase
   * letters, digits, '-', starting with a letter) because it names a Service; object names built from
   * it are shortened with a hash suffix when they would exceed Kubernetes' limits.
   */
  readonly component: string;
  /** Image pinned by digest: `<registry>/tool-<tool>/<component>@sha256:<64 hex>`. */
  readonly image: string;
  readonly command: WorkloadCommand;
  /** CPU limit as a Kubernetes quantity (`100m`, `0.5`, `2`); default `100m`. */
  readonly cpu?: string | undefined;
  /** Memory limit as a Kubernetes quantity (`256Mi`, `1Gi`); default `512Mi`. */
  readonly memory?: string | undefined;
  readonly env?: SecretEnv | undefined;
  /** Slipway release id (label `app.kubernetes.io/version` and `slipway.dev/release`). */
  readonly releaseId: string;
  /** Git commit the image was built from (hex SHA-1 or SHA-256). */
  readonly commit: string;
  /**
   * Default true: the container's root filesystem is read-only and `/tmp` is a writable emptyDir.
   * Set false for apps that write next to their code (caches, sqlite files, uploads).
   */
  readonly readOnlyRootFilesystem?: boolean | undefined;
}

interface ContinuousBase extends WorkloadBase {
  /** Pods kept running; default 1. */
  readonly replicas?: number | undefined;
  readonly healthCheck?: HealthCheck | undefined;
}

export interface WebserviceWorkload extends ContinuousBase {
  readonly kind: "continuous-webservice";
  /** Port the process listens on, given to it as `PORT`; default 8000 (`WEB_PORT`), as on Toolforge. */
  readonly port?: number | undefined;
  /** Path prefix served on `<tool>.<domain>`; default `/`. */
  readonly publish?: string | undefined;
}

export interface WorkerWorkload extends ContinuousBase {
  readonly kind: "continuous-worker";
  /** Optional port: the worker gets `PORT`, a TCP health check fallback and an in-namespace Service. */
  readonly port?: number | undefined;
}

interface RunToCompletion extends WorkloadBase {
  /** Retries after a failed run (Job `backoffLimit`), 0-5; default 0. */
  readonly retry?: number | undefined;
  /** Seconds a run may take before it is killed (`activeDeadlineSeconds`); default unlimited. */
  readonly timeout?: number | undefined;
}

export interface ScheduledWorkload extends RunToCompletion {
  readonly kind: "scheduled";
  /** 5-field cron expression or `@hourly|@daily|@weekly|@monthly|@yearly` (spread per tool+job). */
  readonly schedule: string;
}

export interface OneOffWorkload extends RunToCompletion {
  readonly kind: "one-off";
}

/** One component of a tool, as the deployer wants it to run. The input of `renderWorkload`. */
export type ToolWorkload = WebserviceWorkload | WorkerWorkload | ScheduledWorkload | OneOffWorkload;

/** What the operator provides for the cluster profile. */
export interface RenderOptions {
  /** Webservices are served at `<tool>.<domain>`, e.g. `toolforge.org`. */
  readonly domain: string;
  /** `spec.ingressClassName` of every Ingress, e.g. `nginx`. */
  readonly ingressClassName: string;
  /** Secret (in each tool namespace, or a wildcard one the ingress controller defaults to) for TLS. */
  readonly tlsSecretName?: string | undefined;
  /**
   * The ingress controller's namespace: the only one whose pods may connect to a tool's pods, besides
   * the tool's own (its NetworkPolicy); default `DEFAULT_INGRESS_NAMESPACE`.
   */
  readonly ingressNamespace?: string | undefined;
}

/** Where ingress-nginx's Helm chart and manifests install the controller. */
export const DEFAULT_INGRESS_NAMESPACE = "ingress-nginx";

export const DEFAULT_CPU = "100m";
export const DEFAULT_MEMORY = "512Mi";
export const MAX_RETRY = 5;
/** The UID/GID pods run as; the same unprivileged user the build sandbox uses. */
export const RUN_AS_USER = 1000;

const COMPONENT = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const PROCESS_TYPE = /^[A-Za-z0-9._-]+$/;
const DIGEST_IMAGE = /^[^\s@]+@sha256:[0-9a-f]{64}$/;
const COMMIT = /^[0-9a-f]{7,64}$/;
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HTTP_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;

function invalid(w: { tool: string; component: string }, field: string, problem: string): InputError {
  return new InputError(`component "${w.component}" of tool "${w.tool}": ${field} ${problem}`, {
    details: { field },
  });
}

export function validateComponentName(component: string): string {
  if (component.length > 63 || !COMPONENT.test(component)) {
    throw new InputError(
      `invalid component name "${component.slice(0, 80)}": use 1-63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit`,
      { details: { field: "component" } },
    );
  }
  return component;
}

export function validateEnvName(name: string): string {
  if (!ENV_NAME.test(name)) {
    throw new InputError(
      `invalid environment variable name "${name.slice(0, 80)}": use letters, digits and '_', not starting with a digit`,
      {
        details: { field: "env" },
      },
    );
  }
  if (name === "PORT") {
    throw new InputError(
      "PORT is set by Slipway to the port the process must listen on; choose another name",
      {
        details: { field: "env" },
      },
    );
  }
  return name;
}

/** The port of a webservice (default 8000) or worker (none unless given). */
export function workloadPort(w: ToolWorkload): number | undefined {
  switch (w.kind) {
    case "continuous-webservice":
      return w.port ?? WEB_PORT;
    case "continuous-worker":
      return w.port;
    case "scheduled":
    case "one-off":
      return undefined;
  }
}

/**
 * Checks everything Kubernetes would reject later (or accept and then fail at run time), so the
 * maintainer hears about it before anything is applied. Throws InputError naming the field.
 */
export function validateWorkload(w: ToolWorkload): void {
  validateToolName(w.tool);
  validateComponentName(w.component);
  if (!DIGEST_IMAGE.test(w.image))
    throw invalid(w, "image", `must be pinned by digest (…@sha256:<64 hex>), got "${w.image}"`);
  if ("process" in w.command) {
    if (!PROCESS_TYPE.test(w.command.process))
      throw invalid(w, "command", `process type must match [A-Za-z0-9._-]+`);
  } else if (w.command.shell.trim() === "") {
    throw invalid(w, "command", "must not be empty");
  }
  if (!LABEL_VALUE.test(w.releaseId)) throw invalid(w, "releaseId", "must be a Kubernetes label value");
  if (!COMMIT.test(w.commit)) throw invalid(w, "commit", "must be a lowercase hex commit id");
  resources(w); // validates cpu and memory
  for (const name of w.env?.names ?? []) validateEnvName(name);

  const port = workloadPort(w);
  if (port !== undefined && (!Number.isInteger(port) || port < 1024 || port > 65535)) {
    // Containers run without capabilities, so they cannot bind ports below 1024.
    throw invalid(w, "port", `must be an integer from 1024 to 65535 (got ${port})`);
  }
  switch (w.kind) {
    case "continuous-webservice":
    case "continuous-worker": {
      const replicas = w.replicas ?? 1;
      if (!Number.isInteger(replicas) || replicas < 1)
        throw invalid(w, "replicas", `must be an integer of at least 1 (got ${replicas})`);
      const check = w.healthCheck;
      if (check?.type === "http") {
        if (port === undefined) throw invalid(w, "health_check_http", "needs a port");
        if (!HTTP_PATH.test(check.path))
          throw invalid(w, "health_check_http", `must be an absolute URL path (got "${check.path}")`);
      }
      if (check?.type === "script" && check.script.trim() === "")
        throw invalid(w, "health_check_script", "must not be empty");
      if (w.kind === "continuous-webservice" && w.publish !== undefined && !HTTP_PATH.test(w.publish)) {
        throw invalid(w, "publish", `must be an absolute URL path (got "${w.publish}")`);
      }
      return;
    }
    case "scheduled":
    case "one-off": {
      const retry = w.retry ?? 0;
      if (!Number.isInteger(retry) || retry < 0 || retry > MAX_RETRY)
        throw invalid(w, "retry", `must be an integer from 0 to ${MAX_RETRY} (got ${retry})`);
      if (w.timeout !== undefined && (!Number.isInteger(w.timeout) || w.timeout < 1)) {
        throw invalid(w, "timeout", `must be a whole number of seconds of at least 1 (got ${w.timeout})`);
      }
      return;
    }
  }
}

export function validateOptions(options: RenderOptions): void {
  if (!DOMAIN.test(options.domain)) {
    throw new InputError(
      `invalid domain "${options.domain}": use a lowercase DNS name such as toolforge.org`,
      { details: { field: "domain" } },
    );
  }
  if (
    options.ingressClassName.length > 253 ||
    !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(options.ingressClassName)
  ) {
    throw new InputError(`invalid ingress class name "${options.ingressClassName}"`, {
      details: { field: "ingressClassName" },
    });
  }
  validateIngressNamespace(options.ingressNamespace);
}

/** A namespace name is a DNS label: at most 63 lowercase letters, digits and '-'. */
export function validateIngressNamespace(namespace: string | undefined): void {
  if (namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
    throw new InputError(
      `invalid ingress controller namespace "${namespace.slice(0, 80)}": use the name of the namespace the ingress controller runs in, such as ingress-nginx`,
      { details: { field: "ingressNamespace" } },
    );
  }
}

// ---- resources -------------------------------------------------------------------------------

const MEMORY = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/;
const MEMORY_FACTOR: Record<string, number> = {
  "": 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};
const CPU = /^([0-9]+(?:\.[0-9]+)?)(m)?$/;

/** Bytes of a memory quantity, or undefined when it is not one. */
export function parseMemory(quantity: string): number | undefined {
  const m = MEMORY.exec(quantity);
  if (!m) return undefined;
  const bytes = Number(m[1]) * (MEMORY_FACTOR[m[2] ?? ""] ?? 1);
  return Number.isFinite(bytes) && bytes > 0 ? bytes : undefined;
}

/** Millicores of a CPU quantity, or undefined when it is not one. */
export function parseCpu(quantity: string): number | undefined {
  const m = CPU.exec(quantity);
  if (!m) return undefined;
  const millis = m[2] === "m" ? Number(m[1]) : Number(m[1]) * 1000;
  return Number.isFinite(millis) && millis >= 1 ? millis : undefined;
}

export function formatMemory(bytes: number): string {
  const whole = Math.ceil(bytes);
  for (const [suffix, factor] of [
    ["Gi", 2 ** 30],
    ["Mi", 2 ** 20],
    ["Ki", 2 ** 10],
  ] as const) {
    if (whole % factor === 0) return `${whole / factor}${suffix}`;
  }
  return String(whole);
}

export function formatCpu(millis: number): string {
  return `${Math.ceil(millis)}m`;
}

export interface Resources {
  readonly limits: { readonly cpu: string; readonly memory: string };
  readonly requests: { readonly cpu: string; readonly memory: string };
}

/**
 * Limits are what the maintainer asked for (default 100m / 512Mi). Requests follow Toolforge's jobs
 * framework: a limit below the default is also the request; a limit at or above it requests half, so
 * a tool is not charged its peak against the namespace quota while it idles.
 */
export function resources(w: {
  tool: string;
  component: string;
  cpu?: string | undefined;
  memory?: string | undefined;
}): Resources {
  const cpu = w.cpu ?? DEFAULT_CPU;
  const memory = w.memory ?? DEFAULT_MEMORY;
  const millis = parseCpu(cpu);
  if (millis === undefined)
    throw invalid(w, "cpu", `must be a CPU quantity such as 100m, 0.5 or 2 (got "${cpu}")`);
  const bytes = parseMemory(memory);
  if (bytes === undefined)
    throw invalid(w, "memory", `must be a memory quantity such as 256Mi or 1Gi (got "${memory}")`);
  const defaultMillis = parseCpu(DEFAULT_CPU)!;
  const defaultBytes = parseMemory(DEFAULT_MEMORY)!;
  return {
    limits: { cpu, memory },
    requests: {
      cpu: millis < defaultMillis ? cpu : formatCpu(millis / 2),
      memory: bytes < defaultBytes ? memory : formatMemory(bytes / 2),
    },
  };
}
