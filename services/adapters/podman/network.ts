import { TransientError } from "../../platform/errors.js";
import { podman } from "./podman.js";

const LABEL = "io.slipway";

/** What podman says when a container is started on a network that no longer exists. */
const NETWORK_GONE = /network not found|unable to find network/i;

/** Whether a failed `podman run`'s stderr says its network is gone. */
export function networkGone(stderr: string): boolean {
  return NETWORK_GONE.test(stderr);
}

/**
 * One podman network per tool, shared by the tool's web, job and build containers, so that no tool's
 * container can reach another tool's container at its address: only through the front proxy, as
 * anyone on the internet would. The networks are created with `isolate=true` because podman's
 * networks are not isolated from each other otherwise (with CNI, the firewall plugin accepts whatever
 * a container sends; with netavark, likewise): isolated networks drop traffic between each other, while
 * traffic to the internet leaves through the host as it does from podman's default network.
 * Podman runs with netavark (infra/containers.conf): with CNI every container start grew by about
 * 85 ms per network on the machine, so one per tool did not scale (docs/scale.md).
 *
 * Named `<owner>-<tool>` and labelled with the owner (one per server, from its state directory, see
 * `containerOwner`), so two servers on one machine never share a tool's network and each removes only
 * its own. A network is created on first use and kept while the tool exists; `removeUnused` drops
 * those no container uses. Each costs a bridge and a /24 from podman's subnet pools (by default
 * 10.89.0.0 to 10.255.255.0: about 42,000 networks).
 */
export class ToolNetworks {
  /** A create in flight per network, so that a tool's replicas starting at once create it once. */
  private readonly creating = new Map<string, Promise<string>>();
  /**
   * Networks this process has found or created. Asking podman each time cost every build and every
   * deploy a `podman network exists`: 0.3 s alone, 2 to 4.5 s while another container is being
   * removed (both take podman's network lock), and it sat on the critical path of push to live.
   */
  private readonly known = new Set<string>();

  constructor(private readonly options: { readonly repoRoot: string; readonly owner: string }) {}

  /** The network of `tool` (a valid tool name: lowercase letters, digits and '-', at most 52). */
  name(tool: string): string {
    return `${this.options.owner}-${tool}`;
  }

  /**
   * The network of `tool`, created if missing. Remembered once seen: a network removed behind this
   * process's back (by hand, or by another server process deleting the tool) makes the next container
   * start fail with `networkGone`, and the caller then `forget`s it and asks again, which creates it.
   */
  ensure(tool: string): Promise<string> {
    const name = this.name(tool);
    if (this.known.has(name)) return Promise.resolve(name);
    const pending = this.creating.get(name);
    if (pending) return pending;
    const created = this.create(tool, name)
      .then((n) => {
        this.known.add(n);
        return n;
      })
      .finally(() => this.creating.delete(name));
    this.creating.set(name, created);
    return created;
  }

  /** Drops what this process remembers of `tool`'s network, so the next `ensure` asks podman again. */
  forget(tool: string): void {
    this.known.delete(this.name(tool));
  }

  /**
   * Runs `start` (a container start on the tool's network); when podman answers that the network is
   * gone, creates it again and runs `start` once more.
   */
  async retryIfGone<T extends { readonly code: number; readonly stderr: string }>(
    tool: string,
    start: (network: string) => Promise<T>,
  ): Promise<T> {
    const first = await start(await this.ensure(tool));
    if (first.code === 0 || !networkGone(first.stderr)) return first;
    this.forget(tool);
    return start(await this.ensure(tool));
  }

  private async create(tool: string, name: string): Promise<string> {
    const { repoRoot, owner } = this.options;
    if (await this.exists(name)) return name;
    const res = await podman(
      [
        "network",
        "create",
        "--opt",
        "isolate=true",
        // No aardvark-dns process per network: containers resolve through the host's resolvers, as on
        // podman's default network, and no tool's containers look each other up by name.
        "--disable-dns",
        "--label",
        `${LABEL}.owner=${owner}`,
        "--label",
        `${LABEL}.tool=${tool}`,
        name,
      ],
      { repoRoot, allowFailure: true },
    );
    // Another server process (a builder next to the deployer) may have created it in the meantime.
    if (res.code !== 0 && !(await this.exists(name))) {
      throw new TransientError(`podman could not create network ${name}: ${res.stderr.trim().slice(-300)}`);
    }
    return name;
  }

  private async exists(name: string): Promise<boolean> {
    const res = await podman(["network", "exists", name], {
      repoRoot: this.options.repoRoot,
      allowFailure: true,
    });
    return res.code === 0;
  }

  /**
   * Removes this owner's networks (of `tool`, or all) that no container uses; returns how many went.
   * Networks of other owners are never touched.
   */
  removeUnused(tool?: string): Promise<number> {
    if (tool === undefined) this.known.clear();
    else this.forget(tool);
    const labels = { [`${LABEL}.owner`]: this.options.owner, ...(tool ? { [`${LABEL}.tool`]: tool } : {}) };
    return removeUnusedNetworks(this.options.repoRoot, labels);
  }
}

/**
 * Removes the networks carrying all these labels that no container uses (podman refuses to remove a
 * network in use, and it is kept); returns how many went.
 */
export async function removeUnusedNetworks(
  repoRoot: string,
  labels: Readonly<Record<string, string>>,
): Promise<number> {
  const filters = Object.entries(labels).flatMap(([k, v]) => ["--filter", `label=${k}=${v}`]);
  const listed = await podman(["network", "ls", "--quiet", ...filters], { repoRoot, allowFailure: true });
  let removed = 0;
  for (const name of listed.stdout.split("\n").filter(Boolean)) {
    const res = await podman(["network", "rm", name], { repoRoot, allowFailure: true });
    if (res.code === 0) removed++;
  }
  return removed;
}
