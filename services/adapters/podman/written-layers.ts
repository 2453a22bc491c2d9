import type { WrittenLayer, WrittenLayers } from "../../ports/runtime.js";
import { podman } from "./podman.js";

const LABEL = "io.slipway";

interface SizedPs {
  readonly Id: string;
  readonly Labels?: Record<string, string> | null;
  /** `rwSize`: what the container wrote over its image (podman walks the upper directory). */
  readonly Size?: { readonly rwSize?: number } | null;
}

/** The writable layers of this server's running web and job containers, from `podman ps --size`. */
export class PodmanWrittenLayers implements WrittenLayers {
  constructor(
    private readonly options: {
      readonly repoRoot: string;
      /** Owner labels of the server's web and jobs containers (`containerOwner(home, "web" | "jobs")`). */
      readonly owners: { readonly web: string; readonly jobs: string };
    },
  ) {}

  async measure(): Promise<WrittenLayer[]> {
    const list = async (owner: string) => {
      const res = await podman(
        ["ps", "--size", "--format", "json", "--filter", `label=${LABEL}.owner=${owner}`],
        { repoRoot: this.options.repoRoot },
      );
      return JSON.parse(res.stdout || "[]") as SizedPs[];
    };
    const [web, jobs] = await Promise.all([list(this.options.owners.web), list(this.options.owners.jobs)]);
    const layer = (r: SizedPs, kind: "web" | "job"): WrittenLayer[] => {
      const tool = r.Labels?.[`${LABEL}.tool`];
      // Unlabelled containers of the web owner are one-shot release-phase runs, bounded by their timeout.
      if (!tool) return [];
      return [
        {
          id: r.Id,
          tool,
          kind,
          process: r.Labels?.[kind === "web" ? `${LABEL}.process` : `${LABEL}.job`] ?? "",
          releaseId: kind === "web" ? r.Labels?.[`${LABEL}.release`] : undefined,
          replica: Number(r.Labels?.[`${LABEL}.replica`] ?? 0),
          bytes: r.Size?.rwSize ?? 0,
        },
      ];
    };
    return [...web.flatMap((r) => layer(r, "web")), ...jobs.flatMap((r) => layer(r, "job"))];
  }

  async stop(id: string): Promise<void> {
    await podman(["stop", "-t", "5", id], { repoRoot: this.options.repoRoot, allowFailure: true });
  }
}
