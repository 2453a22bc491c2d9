import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { TektonBackend } from "../../adapters/tekton/backend.js";
import type { BuildBackend } from "../../ports/build-backend.js";
import { ConfigError, type Config } from "../../platform/env.js";
import { CNB_USER } from "../../adapters/stack/rootfs.js";
import { SUITES } from "../../adapters/stack/index.js";
import type { Logger } from "../../platform/logger.js";
import type { SourceAccess } from "./source-access.js";

/**
 * The Tekton build backend (`SLIPWAY_BUILD_BACKEND=tekton`, docs/tekton.md): applies `pipelines/` in
 * the builds namespace and runs each build as a PipelineRun there. Not the default anywhere.
 */
export async function tektonBuilder(
  config: Config,
  logger: Logger,
  access: SourceAccess,
  builder: string,
): Promise<BuildBackend> {
  const { buildImage, runImage, fetchImage } = config.tekton;
  if (!buildImage || !runImage || !fetchImage || !config.registry) {
    throw new ConfigError(
      "SLIPWAY_BUILD_BACKEND=tekton needs SLIPWAY_TEKTON_BUILD_IMAGE, SLIPWAY_TEKTON_RUN_IMAGE, SLIPWAY_TEKTON_FETCH_IMAGE and SLIPWAY_REGISTRY_URL",
    );
  }
  return TektonBackend.start(
    tektonKubeConfig(config),
    {
      builder,
      namespace: config.tekton.namespace,
      registry: config.registry.host,
      buildImage,
      runImage,
      fetchImage,
      pushSecret: config.tekton.pushSecret,
      memoryMb: config.build.memoryMb,
      cpus: config.build.cpus,
      timeoutS: config.build.timeoutS,
      mirrors: config,
      cacheSize: "5Gi",
      workspaceSize: "2Gi",
      // The stack's build user: the build image and the pods run as it.
      uid: CNB_USER.uid,
      gid: CNB_USER.gid,
      pipelinesDir: path.join(config.repoRoot, "pipelines"),
      credential: async (request) => (await access.plan(request.sourceUrl, undefined, request.tool)).auth,
      // The default stack's images, and those of the other stacks `slipway stack push --suite` pushed.
      suites: [
        { ...SUITES[0], buildImage, runImage },
        ...SUITES.slice(1).flatMap((s) => {
          const images = config.tekton.suiteImages[s.suite];
          return images ? [{ ...s, buildImage: images.build, runImage: images.run }] : [];
        }),
      ],
    },
    logger.child({ component: "tekton" }),
  );
}

/** The cluster the builds run on: `SLIPWAY_KUBECONFIG`, else the default (in-cluster or ~/.kube/config). */
export function tektonKubeConfig(config: Config): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (config.kubernetes.kubeconfig) kubeConfig.loadFromFile(config.kubernetes.kubeconfig);
  else kubeConfig.loadFromDefault();
  return kubeConfig;
}
