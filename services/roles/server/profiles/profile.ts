import type { RenderOptions } from "../../../domain/kubernetes/index.js";
import type { JobService } from "../../../domain/jobs/job-service.js";
import type { JobsRuntime } from "../../../ports/jobs-runtime.js";
import type { AfterLive } from "../../../domain/releases/deployer.js";
import type { ReplicasOf } from "../../../domain/releases/webservice-service.js";
import type { ToolTraces } from "../../../domain/tools/tool-deletion.js";
import type { Config } from "../../../platform/env.js";
import type { Logger } from "../../../platform/logger.js";
import type { ClusterHealthSource, ClusterHealthView } from "../../../ports/cluster-health.js";
import type { EnvSource } from "../../../ports/envvars.js";
import type { JobsStore } from "../../../ports/jobs-store.js";
import type { LocalImages } from "../../../ports/local-images.js";
import type { BuildLogs } from "../../../ports/logs.js";
import type { ProcessLogs } from "../../../ports/process-logs.js";
import type { PullCredentials } from "../../../ports/registry-access.js";
import type { AppRuntime } from "../../../ports/runtime.js";
import type { StateStore } from "../../../ports/store.js";
import type { UsageHistory } from "../../../ports/usage.js";
import type { RegistryEndpoint } from "../registry-wiring.js";

/**
 * Where tools' webservices and jobs run (`SLIPWAY_RUNTIME`): podman on this machine, or a Kubernetes
 * cluster. Builds run on this machine's podman whatever the profile; a profile is only what differs
 * between runtimes, chosen once at start (profiles/index.ts), so no role asks which runtime it is on.
 */
export interface RuntimeProfile {
  /** Where a tool's webservice answers, as the API shows it. */
  webUrl(tool: string): string;
  /** Whether this server's front proxy serves tools' traffic (locally) or something else does (an Ingress). */
  readonly frontProxy: boolean;
  /** The Ingress settings `slipway render` renders with; none locally. */
  readonly renderOptions?: RenderOptions | undefined;
  /** Whether the cluster answers, shown by healthz; none locally. */
  readonly cluster?: ClusterHealthSource | undefined;
  /** What the API role reads and stops web processes with (`webservice status|stop`). */
  webservice(): WebserviceParts;
  /** What the deployer role runs here: called once, by that role only. */
  deployer(deps: DeployerDeps): DeployerParts;
  /**
   * What a tool leaves on this runtime (its processes, networks, pulled images), removed in this order
   * by `tools delete` after the build backend's traces and before the stored images, repository and state.
   */
  toolTraces(): readonly ToolTraces[];
  /** Release images pulled onto this machine to run them, pruned with the registry's; none on a cluster. */
  readonly localImages?: LocalImages | undefined;
}

export interface WebserviceParts {
  readonly runtime: Pick<AppRuntime, "list" | "stop">;
  readonly replicas?: ReplicasOf | undefined;
  readonly cluster?: (() => ClusterHealthView) | undefined;
}

/** The server's shutdown, as a profile sees it: closers run in reverse order of registration. */
export interface Closers {
  add(closer: () => Promise<void> | void): void;
  /** True once the server is closing: work that starts late (a cluster that answered) stops instead. */
  readonly closing: boolean;
}

/** What a profile is made from; making it does no I/O beyond reading its own settings. */
export interface ProfileDeps {
  readonly store: StateStore;
  readonly registry: RegistryEndpoint;
  readonly logger: Logger;
  readonly closers: Closers;
}

export type ProfileFactory = (config: Config, deps: ProfileDeps) => RuntimeProfile;

/** What the deployer role hands its profile: the same on every runtime. */
export interface DeployerDeps {
  readonly logs: BuildLogs;
  readonly processLogs: ProcessLogs;
  readonly env: EnvSource;
  readonly jobs: JobService;
  /** Job definitions and runs (the cluster profile records its CronJobs' and workers' runs here). */
  readonly jobsStore: JobsStore;
  readonly retention: AfterLive;
  readonly pullCredentials: (tool: string) => Promise<PullCredentials>;
  /** Where tools' CPU and memory samples go (the dashboard's last hour); the local profile samples. */
  readonly usageHistory: UsageHistory;
}

/**
 * The runtime's parts of the deployer role. The role itself starts the deploy worker and the job runner
 * (roles/deployer.ts), in this order: `whenAvailable` → deploy worker → `resume` → `startJobs` → `started`.
 */
export interface DeployerParts {
  /** The "deploy" queue's handler. */
  readonly deployer: { deploy(releaseId: string, signal: AbortSignal): Promise<void> };
  /** Where job runs start. */
  readonly jobsRuntime: JobsRuntime;
  /** Limits of jobs that set none. */
  readonly jobLimits: { readonly memoryMb: number; readonly cpus?: number | undefined };
  /**
   * Runs the role's start: at once, as part of the server's start, or in the background once the
   * runtime answers (a cluster that is down at start does not keep the API and builds from starting).
   */
  whenAvailable(start: () => Promise<void>): Promise<void>;
  /** After the deploy worker started, before the job runner: what was running before this server. */
  resume(): Promise<void>;
  /** Starts the job runner (`start`), retrying where the runtime may go away meanwhile. */
  startJobs(start: () => Promise<void>): Promise<void>;
  /** Once deploys and jobs run: the runtime's own followers. */
  started(): void;
}
