import { KubeConfig } from "@kubernetes/client-node";
import { KubernetesApplier } from "../../adapters/kubernetes/applier.js";
import { ClusterHealth } from "../../adapters/kubernetes/cluster-health.js";
import { KubernetesConfigJobFollower } from "../../adapters/kubernetes/config-job-logs.js";
import { KubernetesJobsRuntime } from "../../adapters/kubernetes/jobs-runtime.js";
import { KubernetesRuntime } from "../../adapters/kubernetes/runtime.js";
import { KubernetesWebLogFollower } from "../../adapters/kubernetes/web-logs.js";
import type { RenderOptions } from "../../domain/kubernetes/index.js";
import type { AfterLive, Deployer } from "../../domain/releases/deployer.js";
import { deployerOnKubernetes } from "../../domain/releases/kubernetes-rollout.js";
import type { Release } from "../../domain/releases/release.js";
import type { Config } from "../../platform/env.js";
import type { Logger } from "../../platform/logger.js";
import type { EnvSource } from "../../ports/envvars.js";
import type { JobsStore } from "../../ports/jobs-store.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { ProcessLogs } from "../../ports/process-logs.js";
import type { PullCredentials } from "../../ports/registry-access.js";
import type { StateStore } from "../../ports/store.js";

/** The Ingress settings of the cluster profile (also what `slipway render` shows). */
export function clusterRenderOptions(config: Config): RenderOptions {
  return {
    domain: config.kubernetes.ingressDomain,
    ingressClassName: config.kubernetes.ingressClass,
    ingressNamespace: config.kubernetes.ingressNamespace,
    ...(config.kubernetes.tlsSecretName ? { tlsSecretName: config.kubernetes.tlsSecretName } : {}),
  };
}

/** The cluster profile's client and the adapters every role shares. Constructing it does no I/O. */
export interface KubernetesProfile {
  readonly kubeConfig: KubeConfig;
  readonly applier: KubernetesApplier;
  /** Deployments of web processes: `webservice status|stop` and the release phase read them. */
  readonly runtime: KubernetesRuntime;
  readonly render: RenderOptions;
  readonly logger: Logger;
  /**
   * Whether the API server answers, probed in the background once started (health, `webservice status`);
   * the deployer's cluster work starts once it does, so an unreachable cluster does not stop the server.
   */
  readonly health: ClusterHealth;
}

/**
 * client-node config from `SLIPWAY_KUBECONFIG`, or else client-node's default order (KUBECONFIG,
 * `~/.kube/config`, the in-cluster service account).
 */
export function kubernetesProfile(
  config: Config,
  deps: { readonly store: StateStore; readonly logger: Logger },
): KubernetesProfile {
  const kubeConfig = new KubeConfig();
  if (config.kubernetes.kubeconfig) kubeConfig.loadFromFile(config.kubernetes.kubeconfig);
  else kubeConfig.loadFromDefault();
  const logger = deps.logger.child({ component: "kubernetes" });
  const applier = new KubernetesApplier(kubeConfig, logger, { subject: config.kubernetes.subject });
  const render = clusterRenderOptions(config);
  const runtime = new KubernetesRuntime(
    applier,
    deps.store,
    { render, rolloutTimeoutS: config.kubernetes.rolloutTimeoutS },
    logger,
  );
  const health = new ClusterHealth(
    kubeConfig,
    { ingressClass: config.kubernetes.ingressClass, maxBackoffMs: config.kubernetes.retryMaxS * 1000 },
    logger.child({ component: "cluster-health" }),
  );
  return { kubeConfig, applier, runtime, render, logger, health };
}

export interface KubernetesDeployerDeps {
  readonly store: StateStore;
  readonly logs: BuildLogs;
  readonly logger: Logger;
  readonly env: EnvSource;
  readonly retention?: AfterLive | undefined;
  /** The jobs of a live release (its one-off components; API jobs move to its image). */
  readonly onLive?: ((release: Release) => Promise<void>) | undefined;
  /** Each tool's registry credential, applied as its `registry-pull` Secret. */
  readonly pullCredentials?: ((tool: string) => Promise<PullCredentials>) | undefined;
}

/** The cluster profile's deployer (`SLIPWAY_RUNTIME=kubernetes`). */
export function kubernetesDeployer(
  config: Config,
  cluster: KubernetesProfile,
  deps: KubernetesDeployerDeps,
): Deployer {
  const kc = cluster.kubeConfig;
  cluster.logger.info(
    {
      cluster: kc.getCurrentCluster()?.server,
      context: kc.getCurrentContext(),
      domain: cluster.render.domain,
    },
    "deploying to Kubernetes",
  );
  return deployerOnKubernetes({
    store: deps.store,
    cluster: cluster.applier,
    jobs: cluster.runtime,
    logs: deps.logs,
    logger: deps.logger.child({ component: "deployer" }),
    env: deps.env,
    retention: deps.retention,
    pullCredentials: deps.pullCredentials,
    onLive: deps.onLive,
    options: {
      render: cluster.render,
      rolloutTimeoutS: config.kubernetes.rolloutTimeoutS,
      memoryMb: config.run.memoryMb,
    },
  });
}

/** Job runs as batch/v1 Jobs, labelled with `runner` so that a restart cleans up only its own. */
export function kubernetesJobsRuntime(
  config: Config,
  cluster: KubernetesProfile,
  deps: { readonly store: StateStore; readonly runner: string },
): KubernetesJobsRuntime {
  return new KubernetesJobsRuntime(
    cluster.kubeConfig,
    cluster.applier,
    deps.store,
    {
      runner: deps.runner,
      startTimeoutS: config.kubernetes.jobStartTimeoutS,
      ingressNamespace: config.kubernetes.ingressNamespace,
    },
    cluster.logger.child({ component: "jobs" }),
  );
}

/** Live releases' web pod output into ProcessLogs, for `slipway webservice logs`. */
export function kubernetesWebLogs(
  cluster: KubernetesProfile,
  deps: { readonly store: StateStore; readonly logs: ProcessLogs },
): KubernetesWebLogFollower {
  return new KubernetesWebLogFollower(cluster.kubeConfig, {
    store: deps.store,
    logs: deps.logs,
    logger: cluster.logger.child({ component: "web-logs" }),
  });
}

/** Pods of config workers and CronJobs as runs of their jobs, for `slipway jobs list|show|logs`. */
export function kubernetesConfigJobs(
  cluster: KubernetesProfile,
  deps: { readonly store: StateStore; readonly jobs: JobsStore },
): KubernetesConfigJobFollower {
  return new KubernetesConfigJobFollower(cluster.kubeConfig, {
    store: deps.store,
    jobs: deps.jobs,
    logger: cluster.logger.child({ component: "config-jobs" }),
  });
}
