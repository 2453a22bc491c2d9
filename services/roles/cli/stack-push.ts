import path from "node:path";
import { RegistryClient } from "../../adapters/registry/client.js";
import { pushClusterImages, type ClusterImages } from "../../adapters/stack/cluster-images.js";
import { DEFAULT_SUITE, SUITES, ensureStack } from "../../adapters/stack/index.js";
import { prepareLifecycleDir } from "../../adapters/stack/lifecycle-dir.js";
import { ConfigError, type Config } from "../../platform/env.js";
import { InputError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";

/**
 * `slipway stack push`: builds the stack if this machine has none, then pushes its build image (with
 * slipway-lifecycle inside) and run image to the registry a cluster pulls from. That is
 * SLIPWAY_REGISTRY_URL with its push account, the registry the Tekton backend requires anyway, so no
 * registry password is ever typed on a command line. `suite` is the stack's Debian release (another
 * Python: trixie has 3.13). Loaded only for this command.
 */
export async function pushStackImages(
  config: Pick<Config, "home" | "stackHome" | "debianMirror" | "caBundle" | "repoRoot" | "registry">,
  logger: Logger,
  suite: string = DEFAULT_SUITE,
): Promise<ClusterImages> {
  const known = SUITES.find((s) => s.suite === suite);
  if (!known)
    throw new InputError(
      `--suite ${suite}: Slipway makes stacks from ${SUITES.map((s) => `${s.suite} (Python ${s.python})`).join(", ")}`,
    );
  const { registry } = config;
  if (!registry)
    throw new ConfigError(
      "slipway stack push needs SLIPWAY_REGISTRY_URL (with SLIPWAY_REGISTRY_USERNAME and SLIPWAY_REGISTRY_PASSWORD): the registry the cluster pulls from",
    );
  const stackConfig = { ...config, home: config.stackHome };
  const stack = await ensureStack(stackConfig, logger.child({ component: "stack" }), known.suite);
  const lifecycleDir = await prepareLifecycleDir({
    repoRoot: config.repoRoot,
    cacheDir: path.join(config.stackHome, "lifecycle"),
  });
  const client = RegistryClient.create({
    url: registry.url,
    username: registry.username,
    password: registry.password,
  });
  const images = await pushClusterImages(client, stack, lifecycleDir, {
    repoRoot: config.repoRoot,
    stackDir: path.join(config.stackHome, "stack"),
  });
  logger.info(
    { buildImage: images.build.reference, buildDigest: images.build.digest, uploaded: images.build.uploaded },
    "stack images pushed",
  );
  return images;
}
