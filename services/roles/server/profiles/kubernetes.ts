import { KubeConfig } from "@kubernetes/client-node";
import { KubernetesApplier } from "../../../adapters/kubernetes/applier.js";
import { ClusterHealth } from "../../../adapters/kubernetes/cluster-health.js";
import { KubernetesConfigJobFollower } from "../../../adapters/kubernetes/config-job-logs.js";
import { KubernetesJobsRuntime } from "../../../adapters/kubernetes/jobs-runtime.js";
import { KubernetesRuntime } from "../../../adapters/kubernetes/runtime.js";
import { KubernetesWebLogFollower } from "../../../adapters/kubernetes/web-logs.js";
import { containerOwner } from "../../../adapters/podman/confinement.js";
import type { RenderOptions } from "../../../domain/kubernetes/index.js";
import type { AfterLive, Deployer } from "../../../domain/releases/deployer.js";
import { deployerOnKubernetes } from "../../../domain/releases/kubernetes-rollout.js";
import type { Release } from "../../../domain/releases/release.js";
import type { Config } from "../../../platform/env.js";
import type { Logger } from "../../../platform/logger.js";
import type { EnvSource } from "../../../ports/envvars.js";
import type { BuildLogs } from "../../../ports/logs.js";
import type { PullCredentials } from "../../../ports/registry-access.js";
import type { StateStore } from "../../../ports/store.js";
import type { DeployerParts, ProfileDeps, RuntimeProfile } from "./profile.js";

/**
 * The cluster profile (`SLIPWAY_RUNTIME=kubernetes`): Kubernetes keeps the live release running (no
 * reconcile) and runs a config's continuous and scheduled components as Deployments and CronJobs; the
 * job runner runs the jobs API's jobs and the config's one-off components as Jobs. The Ingress serves
 * tools' traffic. Builds stay on local podman (docs/kubernetes.md). Nothing of podman's runtime is
 * made here.
 */
export function kubernetesProfile(config: Config, deps: ProfileDeps): RuntimeProfile {
  const { store, logger, closers } = deps;
  const cluster = kubernetesCluster(config, { store, logger });
  // Probed in the background: an unreachable cluster shows in health and `webservice status`, and
  // does not keep the API, git remote and builds from starting.
  cluster.health.start();
  closers.add(() => cluster.health.close());
  return {
    webUrl: (t) =>
      `${config.kubernetes.tlsSecretName ? "https" : "http"}://${t}.${config.kubernetes.ingressDomain}/`,
    frontProxy: false,
    renderOptions: cluster.render,
    cluster: cluster.health,
    webservice: () => ({
      runtime: cluster.runtime,
      replicas: (t, r) => cluster.runtime.replicas(t, r),
      cluster: () => cluster.health.view(),
    }),
    // `tools delete` leaves the tool's namespace and objects in the cluster (as before this seam).
    toolTraces: () => [],
    deployer: (d): DeployerParts => ({
      deployer: kubernetesDeployer(config, cluster, {
        store,
        logs: d.logs,
        logger,
        env: d.env,
        // Workers and CronJobs run as cluster objects: their jobs are recorded as the cluster's, so
        // the runner leaves them alone and the config-job follower keeps their runs and output.
        onLive: async (release) =>
          void (await d.jobs.syncRelease(release, { onCluster: ["continuous", "scheduled"] })),
        retention: d.retention,
        pullCredentials: d.pullCredentials,
      }),
      jobsRuntime: kubernetesJobsRuntime(config, cluster, {
        store,
        runner: containerOwner(config.home, "jobs"),
      }),
      jobLimits: { memoryMb: config.run.memoryMb },
      // What needs the cluster starts once it answers: deploys queued meanwhile wait in the queue, and
      // the job runner's recovery (leftover Jobs, lost runs) runs when it can list the cluster's Jobs.
      whenAvailable: (start) => {
        cluster.health
          .reachable()
          .then(start)
          .catch((e: unknown) => logger.error({ err: e }, "deploys and jobs on Kubernetes could not start"));
        return Promise.resolve();
      },
      resume: () => Promise.resolve(),
      startJobs: (start) => startWhileReachable(cluster.health, start, logger),
      started: () => {
        const followers = [
          // Live releases' web pod output into ProcessLogs, for `slipway webservice logs`.
          new KubernetesWebLogFollower(cluster.kubeConfig, {
            store,
            logs: d.processLogs,
            logger: cluster.logger.child({ component: "web-logs" }),
          }),
          // Pods of config workers and CronJobs as runs of their jobs, for `slipway jobs list|show|logs`.
          new KubernetesConfigJobFollower(cluster.kubeConfig, {
            store,
            jobs: d.jobsStore,
            logger: cluster.logger.child({ component: "config-jobs" }),
          }),
        ];
        for (const follower of followers) {
          follower.start();
          closers.add(() => follower.close());
        }
        logger.info({ server: cluster.health.view().server }, "deploys and jobs on Kubernetes started");
      },
    }),
  };
}

/** The Ingress settings of the cluster profile (also what `slipway render` shows). */
export function clusterRenderOptions(config: Config): RenderOptions {
  return {
    domain: config.kubernetes.ingressDomain,
    ingressClassName: config.kubernetes.ingressClass,
    ingressNamespace: config.kubernetes.ingressNamespace,
    ...(config.kubernetes.tlsSecretName ? { tlsSecretName: config.kubernetes.tlsSecretName } : {}),
  };
}

/** The cluster's client and the adapters every role shares. Constructing it does no I/O. */
interface KubernetesCluster {
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
function kubernetesCluster(
  config: Config,
  deps: { readonly store: StateStore; readonly logger: Logger },
): KubernetesCluster {
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

interface KubernetesDeployerDeps {
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
function kubernetesDeployer(
  config: Config,
  cluster: KubernetesCluster,
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
function kubernetesJobsRuntime(
  config: Config,
  cluster: KubernetesCluster,
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

/**
 * Runs `start` (work whose first step lists the cluster), again each time the cluster is reachable
 * after a failure: it may go away between the probe that found it and this call.
 */
async function startWhileReachable(
  health: { reachable(): Promise<void> },
  start: () => Promise<void>,
  logger: Logger,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt === 1) logger.warn({ err: error }, "cluster work failed to start; retrying");
      await new Promise((r) => setTimeout(r, Math.min(30_000, 1000 * 2 ** attempt)));
      await health.reachable();
    }
  }
}
