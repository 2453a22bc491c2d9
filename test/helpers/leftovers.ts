import path from "node:path";
import { afterAll } from "vitest";
import { containerOwner } from "../../services/adapters/podman/confinement.js";
import { removeUnusedNetworks } from "../../services/adapters/podman/network.js";
import { podman } from "../../services/adapters/podman/podman.js";
import { removeServerTraces } from "../../services/adapters/podman/server-traces.js";
import type { Config } from "../../services/platform/env.js";

/**
 * What the servers a test file started leave in podman (their webservices, which outlive a server by
 * design, their tools' networks, the images they pulled), removed once the file's tests and its own
 * `afterAll`s have run. Left behind, every run would add networks, each taking a /24 from podman's finite
 * pool, until no network (and no test) could be created any more. Only these servers' objects go, found
 * by their homes' owner labels: other files' and other processes' servers on the machine keep theirs.
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");
const servers = new Map<string, string | undefined>();

// Registered when a test file imports this module, so on the file's root suite, before the file's own
// hooks: root `afterAll`s run in reverse order, so this one runs after those (which close its servers).
afterAll(async () => {
  for (const [home, registryHost] of servers) await removeServerTraces({ repoRoot, home, registryHost });
  servers.clear();
});

/** Removes the podman objects of the server on `home` (images pulled from `registryHost` too) at the file's end. */
export function removeAtEnd(home: string, registryHost?: string): void {
  if (!servers.has(home) || registryHost !== undefined) servers.set(home, registryHost);
}

/** The registry the server with this config pulls release images from. */
export function registryHostOf(config: Pick<Config, "registry" | "registryPort">): string {
  return config.registry?.host ?? `127.0.0.1:${config.registryPort}`;
}

/**
 * Removes `tool`'s containers and network now (for an `afterAll`, or before a test reuses the name), of
 * this file's servers only (those `removeAtEnd` knows): a tool of the same name on another process's
 * server (the same test in another checkout) keeps its own.
 */
export async function removeToolContainers(tool: string): Promise<void> {
  for (const home of servers.keys()) {
    for (const kind of ["web", "jobs"] as const) {
      const filters = [
        `label=io.slipway.owner=${containerOwner(home, kind)}`,
        `label=io.slipway.tool=${tool}`,
      ];
      const found = await podman(["ps", "-aq", ...filters.flatMap((f) => ["--filter", f])], {
        repoRoot,
        allowFailure: true,
      });
      const ids = found.stdout.split("\n").filter(Boolean);
      if (ids.length) await podman(["rm", "-f", "-t", "0", ...ids], { repoRoot, allowFailure: true });
    }
    await removeUnusedNetworks(repoRoot, {
      "io.slipway.owner": containerOwner(home, "net"),
      "io.slipway.tool": tool,
    });
  }
}
