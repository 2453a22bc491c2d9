import path from "node:path";
import type { Redis } from "ioredis";
import { GitToolRepository } from "../../adapters/git/tool-repository.js";
import { ToolCacheDirs } from "../../adapters/host/tool-dirs.js";
import { containerOwner } from "../../adapters/podman/confinement.js";
import { ToolNetworks } from "../../adapters/podman/network.js";
import {
  PodmanToolContainers,
  PodmanToolImages,
  PodmanToolNetwork,
} from "../../adapters/podman/tool-traces.js";
import { RegistryToolRepositories } from "../../adapters/registry/tool-repositories.js";
import { RedisToolState, RedisToolSwitches } from "../../adapters/store/redis-tool-state.js";
import { ToolDeletion, type BuildCanceller, type ToolTraces } from "../../domain/tools/tool-deletion.js";
import type { Config } from "../../platform/env.js";
import type { Logger } from "../../platform/logger.js";
import type { StateStore } from "../../ports/store.js";

/**
 * `tools delete` for this server. The order matters: first nothing may start again (the route and the
 * job definitions go, so neither the proxy nor the job runner brings a process back), then the
 * processes, their network and images, the stored images, the repository and caches, and the tool's
 * state last, so that a deletion cut short can be run again.
 */
export function toolDeletion(
  config: Config,
  deps: {
    readonly redis: Redis;
    readonly store: StateStore;
    readonly builds: BuildCanceller;
    readonly reposDir: string;
    readonly registryHost: string;
    readonly logger: Logger;
  },
): ToolDeletion {
  const { repoRoot, home } = config;
  const local = config.runtime !== "kubernetes";
  const networks = new ToolNetworks({ repoRoot, owner: containerOwner(home, "net") });
  const traces: ToolTraces[] = [
    new RedisToolSwitches(deps.redis),
    new PodmanToolContainers({
      repoRoot,
      // Build sandboxes run on this machine's podman in both profiles; web and jobs only locally.
      toolOwners: local ? [containerOwner(home, "web"), containerOwner(home, "jobs")] : [],
      buildOwner: containerOwner(home, "build"),
    }),
    ...(local
      ? [
          new PodmanToolNetwork({ repoRoot, name: (t) => networks.name(t) }),
          new PodmanToolImages({ repoRoot, registryHost: deps.registryHost }),
        ]
      : []),
    // Only the embedded registry is Slipway's to prune; an external one keeps its images.
    ...(config.registry ? [] : [new RegistryToolRepositories(path.join(home, "registry"))]),
    new GitToolRepository(deps.reposDir),
    new ToolCacheDirs(home),
    new RedisToolState(deps.redis),
  ];
  return new ToolDeletion({
    store: deps.store,
    builds: deps.builds,
    traces,
    logger: deps.logger.child({ component: "tool-deletion" }),
  });
}
