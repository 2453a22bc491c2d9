import { containerOwner } from "./confinement.js";
import { removeUnusedNetworks } from "./network.js";
import { podman } from "./podman.js";

/**
 * Everything a server with state directory `home` left in podman: the containers of each of its owners
 * (web, jobs, build), its tools' networks, and the images it pulled from its own registry. For the bench
 * and the tests, which throw the home away; a real server leaves its webservices running across restarts,
 * and `tools delete` removes one tool's. Objects of other servers (other homes) on the machine stay.
 */
export async function removeServerTraces(options: {
  readonly repoRoot: string;
  readonly home: string;
  /** `127.0.0.1:<port>` of the server's own registry: its pulled images are removed too. */
  readonly registryHost?: string | undefined;
}): Promise<void> {
  const { repoRoot, home, registryHost } = options;
  for (const kind of ["web", "jobs", "build"] as const) {
    const filter = `label=io.slipway.owner=${containerOwner(home, kind)}`;
    const found = await podman(["ps", "-aq", "--filter", filter], { repoRoot, allowFailure: true });
    const ids = found.stdout.split("\n").filter(Boolean);
    if (ids.length) await podman(["rm", "-f", "-t", "0", ...ids], { repoRoot, allowFailure: true });
  }
  await removeUnusedNetworks(repoRoot, { "io.slipway.owner": containerOwner(home, "net") });
  if (registryHost === undefined) return;
  const images = await podman(["images", "-q", "--filter", `reference=${registryHost}/*/*`], {
    repoRoot,
    allowFailure: true,
  });
  const ids = [...new Set(images.stdout.split("\n").filter(Boolean))];
  // Not forced: should another process's registry have taken the port since, its running containers
  // keep their images (podman refuses to remove an image a container uses).
  if (ids.length) await podman(["rmi", ...ids], { repoRoot, allowFailure: true });
}
