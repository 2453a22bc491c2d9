import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { isLoopback } from "./net.js";
import { parseAllowHosts } from "./source-addresses.js";

/**
 * The one place that reads `process.env`. Every problem is reported at once, and the result is frozen
 * and passed down; no other module reads the environment.
 */
const port = z.coerce.number().int().min(1).max(65535);
const positive = z.coerce.number().positive();
const MIB = 1024 * 1024;

const schema = z.object({
  SLIPWAY_PORT: port.default(8080),
  SLIPWAY_HOST: z.string().default("127.0.0.1"),
  SLIPWAY_API_PROCESSES: z.coerce.number().int().min(1).max(64).default(1),
  SLIPWAY_HOME: z.string().optional(),
  SLIPWAY_STACK_HOME: z.string().optional(),
  SLIPWAY_PUBLIC_URL: z.url().optional(),
  SLIPWAY_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  REDIS_URL: z.string().optional(),
  SLIPWAY_REGISTRY_PORT: port.default(5080),
  SLIPWAY_REDIS_PORT: port.default(6479),
  SLIPWAY_WEB_DOMAIN: z.string().default("localhost"),
  SLIPWAY_BUILD_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  SLIPWAY_BUILD_PER_TOOL: z.coerce.number().int().min(1).max(64).default(1),
  SLIPWAY_WEBHOOK_RATE_PER_TOOL: z.coerce.number().int().min(0).default(60),
  SLIPWAY_WEBHOOK_RATE_PER_ADDRESS: z.coerce.number().int().min(0).default(300),
  SLIPWAY_BUILD_MEMORY_MB: z.coerce.number().int().min(256).default(2048),
  SLIPWAY_BUILD_CPUS: positive.default(2),
  SLIPWAY_BUILD_TIMEOUT_S: z.coerce.number().int().min(10).default(900),
  SLIPWAY_TEKTON_NAMESPACE: z.string().min(1).default("slipway-builds"),
  SLIPWAY_TEKTON_BUILD_IMAGE: z.string().min(1).optional(),
  SLIPWAY_TEKTON_RUN_IMAGE: z.string().min(1).optional(),
  SLIPWAY_TEKTON_FETCH_IMAGE: z.string().min(1).optional(),
  // The trixie stack's images (Python 3.13), when `slipway stack push --suite trixie` has pushed them.
  SLIPWAY_TEKTON_BUILD_IMAGE_TRIXIE: z.string().min(1).optional(),
  SLIPWAY_TEKTON_RUN_IMAGE_TRIXIE: z.string().min(1).optional(),
  SLIPWAY_TEKTON_PUSH_SECRET: z.string().min(1).default("slipway-registry-push"),
  SLIPWAY_RUN_MEMORY_MB: z.coerce.number().int().min(64).default(512),
  SLIPWAY_RUN_CPUS: z.coerce.number().min(0.01).max(64).default(0.5),
  SLIPWAY_RUN_DISK_MB: z.coerce.number().int().min(1).default(1024),
  SLIPWAY_HEALTH_TIMEOUT_S: z.coerce.number().int().min(1).default(60),
  SLIPWAY_KEEP_RELEASES: z.coerce.number().int().min(1).default(10),
  SLIPWAY_MAX_WEBHOOK_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(1024 * 1024),
  SLIPWAY_MAX_SOURCE_MB: z.coerce.number().int().min(1).default(512),
  SLIPWAY_MAX_PUSH_MB: z.coerce.number().int().min(1).optional(),
  SLIPWAY_MAX_REPO_MB: z.coerce.number().int().min(1).optional(),
  SLIPWAY_CA_BUNDLE: z.string().optional(),
  SLIPWAY_NPM_REGISTRY: z.url().default("https://registry.npmjs.org/"),
  SLIPWAY_DEBIAN_MIRROR: z.url().default("http://deb.debian.org/debian"),
  SLIPWAY_PIP_INDEX_URL: z.url().optional(),
  SLIPWAY_URL: z.url().optional(),
  SLIPWAY_TOKEN: z.string().optional(),
  SLIPWAY_TOOL: z.string().optional(),
  // Names are checked where they are registered (roles/server/profiles, roles/server/build-backends):
  // an unknown one stops `slipway server` before anything starts, naming the known ones.
  SLIPWAY_RUNTIME: z.string().min(1).default("podman"),
  SLIPWAY_BUILD_BACKEND: z.string().min(1).default("podman"),
  SLIPWAY_KUBECONFIG: z.string().optional(),
  SLIPWAY_INGRESS_DOMAIN: z.string().optional(),
  SLIPWAY_INGRESS_CLASS: z.string().default("nginx"),
  SLIPWAY_INGRESS_TLS_SECRET: z.string().optional(),
  SLIPWAY_INGRESS_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, "the ingress controller's namespace, e.g. ingress-nginx")
    .optional(),
  SLIPWAY_ROLLOUT_TIMEOUT_S: z.coerce.number().int().min(10).default(660),
  SLIPWAY_KUBE_RETRY_MAX_S: z.coerce.number().int().min(1).max(600).default(30),
  SLIPWAY_REGISTRY_URL: z.url().optional(),
  SLIPWAY_REGISTRY_KIND: z.enum(["oci", "harbor"]).default("oci"),
  SLIPWAY_REGISTRY_USERNAME: z.string().min(1).optional(),
  SLIPWAY_REGISTRY_PASSWORD: z.string().min(1).optional(),
  SLIPWAY_REGISTRY_PASSWORD_FILE: z.string().min(1).optional(),
  SLIPWAY_REGISTRY_PULL_USERNAME: z.string().min(1).optional(),
  SLIPWAY_REGISTRY_PULL_PASSWORD: z.string().min(1).optional(),
  SLIPWAY_REGISTRY_PULL_PASSWORD_FILE: z.string().min(1).optional(),
  SLIPWAY_JOB_START_TIMEOUT_S: z.coerce.number().int().min(1).default(300),
  SLIPWAY_KUBE_SUBJECT: z
    .string()
    .regex(
      /^(serviceaccount:[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-.a-z0-9]*[a-z0-9])?|user:[^:\s]+|group:[^:\s]+)$/,
      "Slipway's own Kubernetes account, which each tool namespace's RoleBinding names: serviceaccount:<namespace>:<name>, user:<name> or group:<name>",
    )
    .default("serviceaccount:slipway:slipway"),
  SLIPWAY_SOURCE_ALLOW_HOSTS: z.string().optional(),
  SLIPWAY_SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\/[^\s]+$/, "an SMTP URL such as smtp://user:password@mail.example.org:587")
    .optional(),
  SLIPWAY_SMTP_FROM: z.email("an address such as slipway@example.org").optional(),
});

/**
 * An image registry outside Slipway (`SLIPWAY_REGISTRY_URL`): images are pushed there instead of the
 * embedded docker-registry, and clusters pull them from there.
 */
export interface ExternalRegistryConfig {
  /**
   * `harbor`: one private project `tool-<tool>` per tool, created by Slipway, and a pull-only robot
   * account per tool. `oci`: any registry speaking the distribution API; every tool shares one pull
   * credential, so there is no per-tool isolation of images.
   */
  readonly kind: "oci" | "harbor";
  /** Origin without a trailing slash, e.g. `https://harbor.example.org`. */
  readonly url: string;
  /** `host[:port]` as it appears in image references. */
  readonly host: string;
  /** Slipway's push account (Harbor: one that may create projects and robot accounts). */
  readonly username: string;
  readonly password: string;
  /** `oci` only: what clusters pull with; undefined means the push account. */
  readonly pull: { readonly username: string; readonly password: string } | undefined;
}

export interface Config {
  readonly port: number;
  /** How many processes serve the API role (node:cluster workers sharing `port`; 1: this process). */
  readonly apiProcesses: number;
  readonly host: string;
  /** Absolute path of Slipway's state directory. */
  readonly home: string;
  /** Where the stack images are built and cached (`<stackHome>/stack`); default `home`. Tests share one. */
  readonly stackHome: string;
  /** Base URL users and GitLab reach this server at; used in git, webhook and log URLs. */
  readonly publicUrl: string;
  readonly logLevel: string;
  /**
   * Notification mail (`docs/operating.md`, "Notifications"): off when no SMTP URL is set. The URL may
   * carry credentials: never log it.
   */
  readonly smtp: { readonly url: string; readonly from: string } | undefined;
  /** Operator's Redis; when absent, `slipway server` starts its own under `home`. */
  readonly redisUrl: string | undefined;
  readonly registryPort: number;
  /** Port of the redis-server Slipway starts itself when no REDIS_URL is given. */
  readonly redisPort: number;
  /** Tools are served at `http://<tool>.<webDomain>:<port>/`. */
  readonly webDomain: string;
  readonly build: {
    readonly concurrency: number;
    /** Builds of one tool running at once, across all builders. */
    readonly perTool: number;
    readonly memoryMb: number;
    readonly cpus: number;
    readonly timeoutS: number;
  };
  readonly run: {
    readonly memoryMb: number;
    readonly healthTimeoutS: number;
    /** CPU limit (podman `--cpus`) of tool processes whose config gives no `run.cpu`. */
    readonly cpus: number;
    /** What a local container may write to its own filesystem before it is stopped (ext4 has no quota). */
    readonly diskMb: number;
  };
  /** Images of a tool's newest N releases stay in the registry (rollback targets); older ones are deleted. */
  readonly keepReleases: number;
  /** Tests only, not an environment variable: how often the local deployer samples tools' CPU and memory. */
  readonly usageSampleMs?: number | undefined;
  /** Tests only, not an environment variable: how often the local deployer measures containers' writes. */
  readonly diskCheckMs?: number | undefined;
  readonly limits: {
    readonly webhookBytes: number;
    readonly sourceBytes: number;
    /** Largest pack one `git push` may send; default the source limit. */
    readonly pushBytes: number;
    /** Largest a tool's repository on Slipway's git remote may grow; default four times the source limit. */
    readonly repoBytes: number;
  };
  /** Webhook deliveries per minute (token buckets; 0 = unlimited) per tool and per client address. */
  readonly webhookRate: { readonly perTool: number; readonly perAddress: number };
  /** CA bundle copied into the stack images so builds trust the same roots as this machine. */
  readonly caBundle: string | undefined;
  readonly npmRegistry: string;
  readonly debianMirror: string;
  /** The Python package index builds use (PIP_INDEX_URL); pip's default when unset. */
  readonly pipIndexUrl: string | undefined;
  /**
   * Hosts (`host` or `host:port`) source may be fetched from although they resolve to loopback or
   * private addresses: an operator's GitLab on the private network. Everything else must be public.
   */
  readonly sourceAllowHosts: readonly string[];
  /** Where the repository's `infra/`, `buildpacks/` and `pipelines/` live. */
  readonly repoRoot: string;
  /**
   * Where deployed tools run, a runtime profile's name (roles/server/profiles/index.ts): `podman` (local
   * containers) or `kubernetes` (a cluster, docs/kubernetes.md).
   */
  readonly runtime: string;
  /**
   * Where builds run, a build backend's name (roles/server/build-backends/index.ts): `podman` (this
   * machine) or `tekton` (PipelineRuns on a cluster, docs/tekton.md).
   */
  readonly buildBackend: string;
  readonly kubernetes: {
    /** kubeconfig file; undefined: the in-cluster service account, else `~/.kube/config`. */
    readonly kubeconfig: string | undefined;
    /** Webservices are served by the Ingress at `<tool>.<ingressDomain>`; default webDomain. */
    readonly ingressDomain: string;
    readonly ingressClass: string;
    readonly tlsSecretName: string | undefined;
    /** The ingress controller's namespace, whose pods tools' NetworkPolicies admit; undefined: ingress-nginx. */
    readonly ingressNamespace: string | undefined;
    /** Longer than a Deployment's progressDeadlineSeconds (600), so Kubernetes' own verdict comes first. */
    readonly rolloutTimeoutS: number;
    /** A job run's pod that has not started its container by then (ImagePullBackOff) fails the run. */
    readonly jobStartTimeoutS: number;
    /** While the API server cannot be reached it is probed again after 1 s, 2 s, 4 s … capped here. */
    readonly retryMaxS: number;

    /** Slipway's own account: the subject of the RoleBinding it makes in each tool namespace. */
    readonly subject: KubeSubjectConfig;
  };
  /** An outside registry images go to; undefined: the embedded docker-registry on loopback. */
  readonly registry: ExternalRegistryConfig | undefined;
  /** The Tekton build backend's settings (`SLIPWAY_BUILD_BACKEND=tekton`, docs/tekton.md). */
  readonly tekton: {
    /** Namespace of the PipelineRuns, build caches and the push Secret. */
    readonly namespace: string;
    /** The stack's images in a registry the cluster pulls from, and an image with git. */
    readonly buildImage: string | undefined;
    readonly runImage: string | undefined;
    readonly fetchImage: string | undefined;
    /** Other stacks' images the cluster has, by suite (`SLIPWAY_TEKTON_BUILD_IMAGE_<SUITE>`, `_RUN_IMAGE_<SUITE>`). */
    readonly suiteImages: Readonly<Record<string, { readonly build: string; readonly run: string }>>;
    /** Secret (docker config.json) the export Task pushes with. */
    readonly pushSecret: string;
  };
  readonly cli: {
    /** SLIPWAY_URL, else the server this environment's SLIPWAY_HOST and SLIPWAY_PORT describe. */
    readonly url: string;
    /** Which variables chose `url`, for the message when nothing answers there. */
    readonly urlFrom: "SLIPWAY_URL" | "SLIPWAY_HOST/SLIPWAY_PORT";
    readonly token: string | undefined;
    readonly tool: string | undefined;
  };
}

/** A Kubernetes RBAC subject (the schema checked the `kind:…` form). */
export interface KubeSubjectConfig {
  readonly kind: "ServiceAccount" | "User" | "Group";
  readonly name: string;
  readonly namespace?: string | undefined;
}

function kubeSubject(value: string): KubeSubjectConfig {
  const [kind, first = "", second] = value.split(":");
  if (kind === "serviceaccount") return { kind: "ServiceAccount", namespace: first, name: second ?? "" };
  return { kind: kind === "user" ? "User" : "Group", name: first };
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, repoRoot = defaultRepoRoot()): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`).join("\n");
    throw new ConfigError(`invalid environment:\n${problems}`);
  }
  const e = parsed.data;
  const problems: string[] = [];
  const registry = externalRegistry(e, problems);
  const suiteImages = tektonSuiteImages(e, problems);
  if (problems.length > 0) {
    throw new ConfigError(`invalid environment:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
  // Beside the checkout, not the working directory: `slipway` on PATH (npm link) run from a tool's own
  // repository must find the same home, and its admin token, as `npm start` in the checkout.
  const home = path.resolve(e.SLIPWAY_HOME ?? path.join(repoRoot, ".slipway"));
  const localUrl = `http://${hostForUrl(e.SLIPWAY_HOST)}:${e.SLIPWAY_PORT}`;
  const defaultCa = "/etc/ssl/certs/ca-certificates.crt";
  return deepFreeze({
    port: e.SLIPWAY_PORT,
    apiProcesses: e.SLIPWAY_API_PROCESSES,
    host: e.SLIPWAY_HOST,
    home,
    stackHome: e.SLIPWAY_STACK_HOME ? path.resolve(e.SLIPWAY_STACK_HOME) : home,
    publicUrl: (e.SLIPWAY_PUBLIC_URL ?? localUrl).replace(/\/$/, ""),
    logLevel: e.SLIPWAY_LOG_LEVEL,
    smtp: e.SLIPWAY_SMTP_URL
      ? {
          url: e.SLIPWAY_SMTP_URL,
          from: e.SLIPWAY_SMTP_FROM ?? `slipway@${hostOf(e.SLIPWAY_PUBLIC_URL) ?? "localhost"}`,
        }
      : undefined,
    redisUrl: e.REDIS_URL,
    registryPort: e.SLIPWAY_REGISTRY_PORT,
    redisPort: e.SLIPWAY_REDIS_PORT,
    webDomain: e.SLIPWAY_WEB_DOMAIN,
    build: {
      concurrency: e.SLIPWAY_BUILD_CONCURRENCY,
      perTool: e.SLIPWAY_BUILD_PER_TOOL,
      memoryMb: e.SLIPWAY_BUILD_MEMORY_MB,
      cpus: e.SLIPWAY_BUILD_CPUS,
      timeoutS: e.SLIPWAY_BUILD_TIMEOUT_S,
    },
    run: {
      memoryMb: e.SLIPWAY_RUN_MEMORY_MB,
      healthTimeoutS: e.SLIPWAY_HEALTH_TIMEOUT_S,
      cpus: e.SLIPWAY_RUN_CPUS,
      diskMb: e.SLIPWAY_RUN_DISK_MB,
    },
    keepReleases: e.SLIPWAY_KEEP_RELEASES,
    limits: {
      webhookBytes: e.SLIPWAY_MAX_WEBHOOK_BYTES,
      sourceBytes: e.SLIPWAY_MAX_SOURCE_MB * MIB,
      pushBytes: (e.SLIPWAY_MAX_PUSH_MB ?? e.SLIPWAY_MAX_SOURCE_MB) * MIB,
      repoBytes: (e.SLIPWAY_MAX_REPO_MB ?? 4 * e.SLIPWAY_MAX_SOURCE_MB) * MIB,
    },
    webhookRate: { perTool: e.SLIPWAY_WEBHOOK_RATE_PER_TOOL, perAddress: e.SLIPWAY_WEBHOOK_RATE_PER_ADDRESS },
    caBundle: e.SLIPWAY_CA_BUNDLE ?? (existsSync(defaultCa) ? defaultCa : undefined),
    npmRegistry: e.SLIPWAY_NPM_REGISTRY.replace(/\/?$/, "/"),
    debianMirror: e.SLIPWAY_DEBIAN_MIRROR,
    pipIndexUrl: e.SLIPWAY_PIP_INDEX_URL,
    sourceAllowHosts: parseAllowHosts(e.SLIPWAY_SOURCE_ALLOW_HOSTS),
    repoRoot,
    runtime: e.SLIPWAY_RUNTIME,
    buildBackend: e.SLIPWAY_BUILD_BACKEND,
    kubernetes: {
      kubeconfig: e.SLIPWAY_KUBECONFIG ? path.resolve(e.SLIPWAY_KUBECONFIG) : undefined,
      ingressDomain: e.SLIPWAY_INGRESS_DOMAIN ?? e.SLIPWAY_WEB_DOMAIN,
      ingressClass: e.SLIPWAY_INGRESS_CLASS,
      tlsSecretName: e.SLIPWAY_INGRESS_TLS_SECRET,
      ingressNamespace: e.SLIPWAY_INGRESS_NAMESPACE,
      rolloutTimeoutS: e.SLIPWAY_ROLLOUT_TIMEOUT_S,
      jobStartTimeoutS: e.SLIPWAY_JOB_START_TIMEOUT_S,
      retryMaxS: e.SLIPWAY_KUBE_RETRY_MAX_S,

      subject: kubeSubject(e.SLIPWAY_KUBE_SUBJECT),
    },
    registry,
    tekton: {
      namespace: e.SLIPWAY_TEKTON_NAMESPACE,
      buildImage: e.SLIPWAY_TEKTON_BUILD_IMAGE,
      runImage: e.SLIPWAY_TEKTON_RUN_IMAGE,
      fetchImage: e.SLIPWAY_TEKTON_FETCH_IMAGE,
      suiteImages,
      pushSecret: e.SLIPWAY_TEKTON_PUSH_SECRET,
    },
    cli: {
      url: (e.SLIPWAY_URL ?? localUrl).replace(/\/$/, ""),
      urlFrom: e.SLIPWAY_URL ? "SLIPWAY_URL" : "SLIPWAY_HOST/SLIPWAY_PORT",
      token: e.SLIPWAY_TOKEN,
      tool: e.SLIPWAY_TOOL,
    },
  });
}

/** A `_FILE` variant wins over the plain variable, so a mounted Kubernetes Secret can hold the value. */
function secretValue(
  name: string,
  value: string | undefined,
  file: string | undefined,
  problems: string[],
): string | undefined {
  if (file === undefined) return value;
  try {
    const text = readFileSync(file, "utf8").trim();
    if (text === "") problems.push(`${name}_FILE: ${file} is empty`);
    return text;
  } catch (error) {
    problems.push(`${name}_FILE: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? "error"})`);
    return undefined;
  }
}

/** Both of a suite's images, or neither: a build image without its run image could not be exported. */
function tektonSuiteImages(
  e: z.infer<typeof schema>,
  problems: string[],
): Record<string, { build: string; run: string }> {
  const build = e.SLIPWAY_TEKTON_BUILD_IMAGE_TRIXIE;
  const run = e.SLIPWAY_TEKTON_RUN_IMAGE_TRIXIE;
  if (build && run) return { trixie: { build, run } };
  if (build || run)
    problems.push(
      "SLIPWAY_TEKTON_BUILD_IMAGE_TRIXIE and SLIPWAY_TEKTON_RUN_IMAGE_TRIXIE go together (both printed by `slipway stack push --suite trixie`)",
    );
  return {};
}

function externalRegistry(e: z.infer<typeof schema>, problems: string[]): ExternalRegistryConfig | undefined {
  const password = secretValue(
    "SLIPWAY_REGISTRY_PASSWORD",
    e.SLIPWAY_REGISTRY_PASSWORD,
    e.SLIPWAY_REGISTRY_PASSWORD_FILE,
    problems,
  );
  const pullPassword = secretValue(
    "SLIPWAY_REGISTRY_PULL_PASSWORD",
    e.SLIPWAY_REGISTRY_PULL_PASSWORD,
    e.SLIPWAY_REGISTRY_PULL_PASSWORD_FILE,
    problems,
  );
  if (e.SLIPWAY_REGISTRY_URL === undefined) {
    if (e.SLIPWAY_REGISTRY_USERNAME !== undefined || password !== undefined) {
      problems.push("SLIPWAY_REGISTRY_USERNAME/PASSWORD: set only with SLIPWAY_REGISTRY_URL");
    }
    return undefined;
  }
  const url = new URL(e.SLIPWAY_REGISTRY_URL);
  // Plain HTTP would send the registry password and the images in the clear; only loopback may use it.
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopback(url.hostname))) {
    problems.push(
      `SLIPWAY_REGISTRY_URL: use https:// (plain http is allowed only on loopback), got ${url.protocol}//${url.host}`,
    );
  }
  if (url.pathname !== "/" || url.search !== "") {
    problems.push("SLIPWAY_REGISTRY_URL: give the registry's origin only, without a path or query");
  }
  if (e.SLIPWAY_REGISTRY_USERNAME === undefined)
    problems.push("SLIPWAY_REGISTRY_USERNAME: required with SLIPWAY_REGISTRY_URL");
  if (password === undefined) {
    problems.push(
      "SLIPWAY_REGISTRY_PASSWORD (or SLIPWAY_REGISTRY_PASSWORD_FILE): required with SLIPWAY_REGISTRY_URL",
    );
  }
  const pullUser = e.SLIPWAY_REGISTRY_PULL_USERNAME;
  if ((pullUser === undefined) !== (pullPassword === undefined)) {
    problems.push("SLIPWAY_REGISTRY_PULL_USERNAME and SLIPWAY_REGISTRY_PULL_PASSWORD: set both or neither");
  }
  if (e.SLIPWAY_REGISTRY_KIND === "harbor" && pullUser !== undefined) {
    problems.push(
      "SLIPWAY_REGISTRY_PULL_USERNAME: not used with Harbor, which gets a robot account per tool",
    );
  }
  return {
    kind: e.SLIPWAY_REGISTRY_KIND,
    url: url.origin,
    host: url.host,
    username: e.SLIPWAY_REGISTRY_USERNAME ?? "",
    password: password ?? "",
    pull:
      pullUser !== undefined && pullPassword !== undefined
        ? { username: pullUser, password: pullPassword }
        : undefined,
  };
}

function hostForUrl(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** `services/platform/env.ts` compiles to `dist/services/platform/env.js`; both sit three levels down. */
function defaultRepoRoot(): string {
  const here = path.dirname(new URL(import.meta.url).pathname);
  const up = path.resolve(here, "..", "..");
  return path.basename(up) === "dist" ? path.dirname(up) : up;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The host of a URL (for the default sender address), or undefined. */
function hostOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    return new URL(url).hostname || undefined;
  } catch {
    return undefined;
  }
}

/**
 * slipway-lifecycle's environment (it runs inside the build image, where Slipway's Config does not
 * apply): read once by its entry point, for its own settings and for what build steps inherit.
 */
export function lifecycleEnvironment(): Readonly<Record<string, string | undefined>> {
  return { ...process.env };
}
