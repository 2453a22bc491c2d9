import { KubeConfig } from "@kubernetes/client-node";
import { KubernetesApplier } from "../../adapters/kubernetes/applier.js";
import { KubernetesRuntime } from "../../adapters/kubernetes/runtime.js";
import type { RenderOptions } from "../../domain/kubernetes/index.js";
import type { AfterLive } from "../../domain/releases/deployer.js";
import { KubernetesDeployer } from "../../domain/releases/kubernetes-deployer.js";
import type { Config } from "../../platform/env.js";
import type { Logger } from "../../platform/logger.js";
import type { EnvSource } from "../../ports/envvars.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { PullCredentials } from "../../ports/registry-access.js";
import type { StateStore } from "../../ports/store.js";

export interface KubernetesProfileDeps {
  readonly store: StateStore;
  readonly logs: BuildLogs;
  readonly logger: Logger;
  readonly env: EnvSource;
  readonly retention?: AfterLive | undefined;
  /** Each tool's registry credential, applied as its `registry-pull` Secret. */
  readonly pullCredentials?: ((tool: string) => Promise<PullCredentials>) | undefined;
}

/** The Ingress settings of the cluster profile (also what `slipway render` shows). */
export function clusterRenderOptions(config: Config): RenderOptions {
  return {
    domain: config.kubernetes.ingressDomain,
    ingressClassName: config.kubernetes.ingressClass,
    ...(config.kubernetes.tlsSecretName ? { tlsSecretName: config.kubernetes.tlsSecretName } : {}),
  };
}

/**
 * The cluster profile's deployer (`SLIPWAY_RUNTIME=kubernetes`), assembled in one place: client-node
 * config from `SLIPWAY_KUBECONFIG`, or else client-node's default order (KUBECONFIG, `~/.kube/config`,
 * the in-cluster service account).
 */
export function kubernetesDeployer(config: Config, deps: KubernetesProfileDeps): KubernetesDeployer {
  const kc = new KubeConfig();
  if (config.kubernetes.kubeconfig) kc.loadFromFile(config.kubernetes.kubeconfig);
  else kc.loadFromDefault();
  const logger = deps.logger.child({ component: "kubernetes" });
  const applier = new KubernetesApplier(kc, logger);
  const render = clusterRenderOptions(config);
  const runtime = new KubernetesRuntime(
    applier,
    deps.store,
    { render, rolloutTimeoutS: config.kubernetes.rolloutTimeoutS },
    logger,
  );
  logger.info(
    { cluster: kc.getCurrentCluster()?.server, context: kc.getCurrentContext(), domain: render.domain },
    "deploying to Kubernetes",
  );
  return new KubernetesDeployer({
    store: deps.store,
    cluster: applier,
    jobs: runtime,
    logs: deps.logs,
    logger: deps.logger.child({ component: "deployer" }),
    env: deps.env,
    retention: deps.retention,
    pullCredentials: deps.pullCredentials,
    options: {
      render,
      rolloutTimeoutS: config.kubernetes.rolloutTimeoutS,
      memoryMb: config.run.memoryMb,
    },
  });
}
