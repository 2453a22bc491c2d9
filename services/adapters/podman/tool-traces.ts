import type { Build } from "../../domain/builds/build.js";
import type { ToolTraces } from "../../domain/tools/tool-deletion.js";
import type { LocalImages, PulledImage } from "../../ports/local-images.js";
import { podman } from "./podman.js";

interface PsRow {
  readonly Id: string;
  readonly Labels?: Record<string, string> | null;
}

/**
 * A tool's containers on this server: its webservice replicas and job runs (labelled with the tool
 * and this server's owner prefixes) and its build sandboxes (labelled with the build). Other servers'
 * containers on the machine, even for a tool of the same name, carry other owners and stay.
 */
export class PodmanToolContainers implements ToolTraces {
  readonly what = "containers";

  constructor(
    private readonly options: {
      readonly repoRoot: string;
      /** Owner labels of the web and jobs containers (`containerOwner(home, "web" | "jobs")`); the runtime's. */
      readonly toolOwners?: readonly string[] | undefined;
      /** Owner label of the build sandboxes; the build backend's. */
      readonly buildOwner?: string | undefined;
    },
  ) {}

  /**
   * One trace for both sides' containers on the same podman: each round finds web, job and build
   * containers together, so a job supervisor's restart during the removal is caught by the next round.
   */
  join(other: ToolTraces): ToolTraces | undefined {
    if (!(other instanceof PodmanToolContainers) || other.options.repoRoot !== this.options.repoRoot)
      return undefined;
    const buildOwners = [this.options.buildOwner, other.options.buildOwner].filter((o) => o !== undefined);
    if (buildOwners.length > 1) return undefined;
    return new PodmanToolContainers({
      repoRoot: this.options.repoRoot,
      toolOwners: [...(this.options.toolOwners ?? []), ...(other.options.toolOwners ?? [])],
      buildOwner: buildOwners[0],
    });
  }

  /**
   * Looked up afresh on each of a few rounds: a job supervisor may start a run again (or remove its own
   * container) while this removes them, until its next tick finds the job's definition gone.
   */
  async remove(tool: string, builds: readonly Build[]): Promise<void> {
    for (let round = 0; round < 5; round++) {
      const ids = await this.find(tool, builds);
      if (ids.length === 0) return;
      await podman(["rm", "-f", "-t", "5", ...ids], { repoRoot: this.options.repoRoot, allowFailure: true });
      await new Promise((r) => setTimeout(r, 1000));
    }
    const left = await this.find(tool, builds);
    if (left.length > 0) throw new Error(`podman could not remove containers ${left.join(", ")}`);
  }

  private async find(tool: string, builds: readonly Build[]): Promise<string[]> {
    const ids: string[] = [];
    for (const owner of this.options.toolOwners ?? []) {
      ids.push(...(await this.ps([`label=io.slipway.owner=${owner}`, `label=io.slipway.tool=${tool}`])));
    }
    const buildIds = new Set(builds.map((b) => b.id));
    const { buildOwner } = this.options;
    if (buildIds.size > 0 && buildOwner !== undefined) {
      const rows = await this.rows([`label=io.slipway.owner=${buildOwner}`]);
      ids.push(...rows.filter((r) => buildIds.has(r.Labels?.["io.slipway.build"] ?? "")).map((r) => r.Id));
    }
    return ids;
  }

  private async ps(filters: readonly string[]): Promise<string[]> {
    return (await this.rows(filters)).map((r) => r.Id);
  }

  private async rows(filters: readonly string[]): Promise<PsRow[]> {
    const res = await podman(["ps", "-a", "--format", "json", ...filters.flatMap((f) => ["--filter", f])], {
      repoRoot: this.options.repoRoot,
    });
    return JSON.parse(res.stdout || "[]") as PsRow[];
  }
}

/** The tool's own podman network (`<owner>-<tool>`). */
export class PodmanToolNetwork implements ToolTraces {
  readonly what = "network";

  constructor(
    private readonly options: { readonly repoRoot: string; readonly name: (tool: string) => string },
  ) {}

  async remove(tool: string): Promise<void> {
    const name = this.options.name(tool);
    const exists = await podman(["network", "exists", name], {
      repoRoot: this.options.repoRoot,
      allowFailure: true,
    });
    if (exists.code !== 0) return;
    await podman(["network", "rm", "-f", name], { repoRoot: this.options.repoRoot });
  }
}

interface ImageRow {
  readonly Id: string;
  readonly RepoDigests?: readonly string[] | null;
  readonly Containers?: number;
}

/**
 * The tool's images in podman's local store, pulled from `<registry>/tool-<tool>/…` to run them: all
 * removed by `tools delete`, and those of releases no longer kept by image retention after each deploy.
 */
export class PodmanToolImages implements ToolTraces, LocalImages {
  readonly what = "local images";

  constructor(private readonly options: { readonly repoRoot: string; readonly registryHost: string }) {}

  async remove(tool: string): Promise<void> {
    const ids = (await this.pulled(tool)).map((i) => i.id);
    if (ids.length === 0) return;
    await podman(["rmi", "-f", ...ids], { repoRoot: this.options.repoRoot });
  }

  async pulled(tool: string): Promise<PulledImage[]> {
    const args = [
      "images",
      "--format",
      "json",
      "--filter",
      `reference=${this.options.registryHost}/tool-${tool}/*`,
    ];
    // Podman 4.3 fails the whole listing when another process removes any image while it runs
    // ("image not known"), which on a busy machine (other servers, tests) happens: a second look passes.
    let res = await podman(args, { repoRoot: this.options.repoRoot, allowFailure: true });
    for (let attempt = 1; res.code !== 0 && attempt < 3; attempt++) {
      res = await podman(args, { repoRoot: this.options.repoRoot, allowFailure: attempt < 2 });
    }
    const rows = JSON.parse(res.stdout || "[]") as ImageRow[];
    const byId = new Map<string, PulledImage>();
    for (const r of rows) {
      byId.set(r.Id, {
        id: r.Id,
        digests: (r.RepoDigests ?? []).map((d) => d.slice(d.indexOf("@") + 1)),
        inUse: (r.Containers ?? 0) > 0,
      });
    }
    return [...byId.values()];
  }

  async discard(id: string): Promise<boolean> {
    // Not forced: podman then refuses an image a container uses, or one also named for another tool.
    const res = await podman(["rmi", id], { repoRoot: this.options.repoRoot, allowFailure: true });
    return res.code === 0;
  }
}
