import path from "node:path";
import type { Redis } from "ioredis";
import { GitToolRepository } from "../../adapters/git/tool-repository.js";
import { ToolCacheDirs } from "../../adapters/host/tool-dirs.js";
import { RegistryToolRepositories } from "../../adapters/registry/tool-repositories.js";
import { RedisToolState, RedisToolSwitches } from "../../adapters/store/redis-tool-state.js";
import type { Build } from "../../domain/builds/build.js";
import { ToolDeletion, type ToolTraces } from "../../domain/tools/tool-deletion.js";
import type { Config } from "../../platform/env.js";
import type { Logger } from "../../platform/logger.js";
import type { BuildCanceller } from "../../ports/build-canceller.js";
import type { StateStore } from "../../ports/store.js";
import type { BuildBackendSetup } from "./build-backends/index.js";
import type { RuntimeProfile } from "./profiles/index.js";

/**
 * `tools delete` for this server. The order matters: first nothing may start again (the route and the
 * job definitions go, so neither the proxy nor the job runner brings a process back), then the
 * processes (the build backend's sandboxes, then what the runtime profile runs), their network and
 * images, the stored images, the repository and caches, and the tool's state last, so that a deletion
 * cut short can be run again.
 */
export function toolDeletion(
  config: Config,
  deps: {
    readonly redis: Redis;
    readonly store: StateStore;
    readonly builds: BuildCanceller;
    readonly reposDir: string;
    readonly backend: Pick<BuildBackendSetup, "toolTraces">;
    readonly profile: Pick<RuntimeProfile, "toolTraces">;
    /** The external registry's traces of a tool, when it has any (Harbor: the tool's project). */
    readonly registry?: ToolTraces | undefined;
    readonly logger: Logger;
  },
): ToolDeletion {
  const { home } = config;
  const traces: ToolTraces[] = [
    new RedisToolSwitches(deps.redis),
    ...byKind([...deps.backend.toolTraces(), ...deps.profile.toolTraces()]),
    // The embedded registry's repositories, or Harbor's project; a plain external registry keeps its images.
    ...(config.registry
      ? deps.registry
        ? [deps.registry]
        : []
      : [new RegistryToolRepositories(path.join(home, "registry"))]),
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

/**
 * Traces of one kind from both sides (podman's build sandboxes and web and job containers are all
 * "containers") become one step, so the answer names each kind once: joined where they can be (one
 * podman removal finding all of them each round), else one after the other in the order given.
 */
function byKind(traces: readonly ToolTraces[]): ToolTraces[] {
  const kinds = new Map<string, ToolTraces>();
  for (const t of traces) {
    const earlier = kinds.get(t.what);
    kinds.set(t.what, earlier ? (earlier.join?.(t) ?? inTurn(earlier, t)) : t);
  }
  return [...kinds.values()];
}

function inTurn(first: ToolTraces, then: ToolTraces): ToolTraces {
  return {
    what: first.what,
    remove: async (tool: string, builds: readonly Build[]) => {
      await first.remove(tool, builds);
      await then.remove(tool, builds);
    },
  };
}
