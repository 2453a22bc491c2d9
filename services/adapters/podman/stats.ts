import { podman } from "./podman.js";

const LABEL = "io.slipway";

/** One running container of a tool's, and what it uses now. */
export interface ContainerUsage {
  readonly tool: string;
  /** `web` for a webservice process (and its other Procfile processes), `job` for a job run. */
  readonly kind: "web" | "job";
  /** The process type (web containers) or the job's name. */
  readonly process: string;
  /** Percent of one core. */
  readonly cpuPercent: number;
  readonly memoryBytes: number;
}

interface PsRow {
  readonly Id: string;
  readonly Labels?: Record<string, string> | null;
}

/**
 * What tools' containers use, from `podman stats --no-stream` over the containers of this server's
 * owners (web and jobs; build sandboxes are Slipway's, not a tool's). The raw numbers come from a Go
 * template (`.ContainerStats.CPU`, `.MemUsage` in bytes): `--format json` only gives rounded text.
 */
export async function toolContainerUsage(options: {
  readonly repoRoot: string;
  /** Owner labels of the server's web and jobs containers (`containerOwner(home, "web" | "jobs")`). */
  readonly owners: { readonly web: string; readonly jobs: string };
  readonly signal?: AbortSignal | undefined;
}): Promise<ContainerUsage[]> {
  const { repoRoot, signal } = options;
  const list = async (owner: string) => {
    const res = await podman(["ps", "--format", "json", "--filter", `label=${LABEL}.owner=${owner}`], {
      repoRoot,
      signal,
    });
    return JSON.parse(res.stdout || "[]") as PsRow[];
  };
  const [web, jobs] = await Promise.all([list(options.owners.web), list(options.owners.jobs)]);
  const who = new Map<string, Omit<ContainerUsage, "cpuPercent" | "memoryBytes">>();
  for (const r of web) {
    const tool = r.Labels?.[`${LABEL}.tool`];
    // Unlabelled web-owner containers are one-shot release-phase runs: not a tool's process.
    if (tool) who.set(r.Id, { tool, kind: "web", process: r.Labels?.[`${LABEL}.process`] ?? "" });
  }
  for (const r of jobs) {
    const tool = r.Labels?.[`${LABEL}.tool`];
    if (tool) who.set(r.Id, { tool, kind: "job", process: r.Labels?.[`${LABEL}.job`] ?? "" });
  }
  if (who.size === 0) return [];
  const res = await podman(
    [
      "stats",
      "--no-stream",
      "--format",
      "{{.ContainerStats.ContainerID}} {{.ContainerStats.CPU}} {{.ContainerStats.MemUsage}}",
      ...who.keys(),
    ],
    // A container that stopped between ps and stats fails the call: report none rather than fail the scrape.
    { repoRoot, signal, allowFailure: true },
  );
  return parseStats(res.stdout).flatMap(({ id, cpuPercent, memoryBytes }) => {
    const c = who.get(id);
    return c ? [{ ...c, cpuPercent, memoryBytes }] : [];
  });
}

/** Lines of `<id> <cpu percent> <memory bytes>`; anything else is skipped. */
export function parseStats(stdout: string): { id: string; cpuPercent: number; memoryBytes: number }[] {
  return stdout.split("\n").flatMap((line) => {
    const [id, cpu, mem] = line.trim().split(/\s+/);
    const cpuPercent = Number(cpu);
    const memoryBytes = Number(mem);
    if (!id || !Number.isFinite(cpuPercent) || !Number.isFinite(memoryBytes) || mem === undefined) return [];
    return [{ id, cpuPercent, memoryBytes }];
  });
}
