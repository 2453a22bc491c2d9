import type { Redis } from "ioredis";
import { HarborClient } from "../../adapters/harbor/client.js";
import { HarborToolRegistry } from "../../adapters/harbor/tool-registry.js";
import { RegistryServer } from "../../adapters/registry/server.js";
import { SharedRegistryAccess } from "../../adapters/registry/shared-access.js";
import { RedisPullCredentials } from "../../adapters/store/redis-pull-credentials.js";
import type { Config } from "../../platform/env.js";
import type { Logger } from "../../platform/logger.js";
import type { ToolRegistryAccess } from "../../ports/registry-access.js";
import type { ToolTraces } from "../../domain/tools/tool-deletion.js";
import { loadCryptoBox } from "./crypto-key.js";

/** Where images are pushed and pulled from, and with which account. */
export interface RegistryEndpoint {
  readonly url: string;
  /** `host[:port]` as in image references. */
  readonly host: string;
  readonly username: string;
  readonly password: string;
}

/**
 * The image registry of this server. With `SLIPWAY_REGISTRY_URL` images go to that registry and the
 * embedded docker-registry is not started: nothing would push to it, and its garbage collection is
 * only right for a registry nobody else writes to. Otherwise the embedded one starts on loopback.
 */
export async function registryFeature(
  config: Config,
  deps: { readonly redis: Redis; readonly logger: Logger },
): Promise<{
  endpoint: RegistryEndpoint;
  access: ToolRegistryAccess;
  /** What `tools delete` removes in the registry, when it is Slipway's to remove (Harbor's project). */
  traces?: ToolTraces;
  close: () => Promise<void>;
}> {
  const external = config.registry;
  if (!external) {
    const server = await RegistryServer.fromConfig(config, deps.logger);
    const shared = { registry: server.host, username: server.username, password: server.password };
    return { endpoint: server, access: new SharedRegistryAccess(shared), close: () => server.close() };
  }
  const endpoint: RegistryEndpoint = {
    url: external.url,
    host: external.host,
    username: external.username,
    password: external.password,
  };
  const close = () => Promise.resolve();
  if (external.kind === "oci") {
    const pull = external.pull ?? { username: external.username, password: external.password };
    return { endpoint, access: new SharedRegistryAccess({ registry: external.host, ...pull }), close };
  }
  const access = new HarborToolRegistry({
    client: HarborClient.create({
      url: external.url,
      username: external.username,
      password: external.password,
    }),
    store: new RedisPullCredentials(deps.redis, await loadCryptoBox(config.home)),
    registryHost: external.host,
    // Harbor's own retention only backs up Slipway's (ImageRetention, which knows what is live): it
    // counts pushes, so a run of failed deploys could push the live image out of a window of
    // SLIPWAY_KEEP_RELEASES. Three times that, at least 30, makes that a month of failures, not a week.
    keepImages: Math.max(3 * config.keepReleases, 30),
    logger: deps.logger.child({ component: "harbor" }),
  });
  const traces: ToolTraces = { what: "Harbor project", remove: (tool) => access.removeTool(tool) };
  return { endpoint, access, traces, close };
}
