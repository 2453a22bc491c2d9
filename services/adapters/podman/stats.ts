import type { ToolContainerUsage } from "../../ports/usage.js";
import { podman } from "./podman.js";

const LABEL = "io.slipway";

/** One running container of a tool's, and what it uses now. */
export interface LabelledUsage extends ToolContainerUsage {
  /** The process type (web containers) or the job's name. */
  readonly process: string;
}

interface PsRow {
  readonly Id: string;
  readonly Labels?: Record<string, string> | null;
}

/**
 * What tools' containers use, from `podman stats --no-stream` over the containers of this server's
 * owners (web and jobs; build sandboxes are Slipway's, not a tool's).
 */
export async function toolContainerUsage(options: {
  readonly repoRoot: string;
  /** Owner labels of the server's web and jobs containers (`containerOwner(home, "web" | "jobs")`). */
  readonly owners: { readonly web: string; readonly jobs: string };
  readonly signal?: AbortSignal | undefined;
}): Promise<LabelledUsage[]> {
  const { repoRoot, signal } = options;
  const list = async (owner: string) => {
    const res = await podman(["ps", "--format", "json", "--filter", `label=${LABEL}.owner=${owner}`], {
      repoRoot,
      signal,
    });
    return JSON.parse(res.stdout || "[]") as PsRow[];
  };
  const [web, jobs] = await Promise.all([list(options.owners.web), list(options.owners.jobs)]);
  const who = new Map<string, Omit<LabelledUsage, "cpuPercent" | "memoryBytes">>();
  for (const r of web) {
    const tool = r.Labels?.[`${LABEL}.tool`];
    // Unlabelled web-owner containers are one-shot release-phase runs: not a tool's process.
    if (tool) who.set(r.Id, { tool, kind: "web", process: r.Labels?.[`${LABEL}.process`] ?? "" });
  }
  for (const r of jobs) {
    const tool = r.Labels?.[`${LABEL}.tool`];
    if (tool) who.set(r.Id, { tool, kind: "job", process: r.Labels?.[`${LABEL}.job`] ?? "" });
  }
  const stats = await containerStats([...who.keys()], { repoRoot, signal });
  return stats.flatMap(({ id, cpuPercent, memoryBytes }) => {
    const c = who.get(id);
    return c ? [{ ...c, cpuPercent, memoryBytes }] : [];
  });
}

/** What one container uses now, in raw numbers (the page and the metrics format them). */
export interface ContainerStats {
  /** The full container id. */
  readonly id: string;
  /** Percent of one core. */
  readonly cpuPercent: number;
  readonly memoryBytes: number;
  /** The container's memory limit (the host's memory when it has none). */
  readonly memoryLimitBytes: number;
}

/**
 * `podman stats --no-stream` of the given containers, the one reader of it. The raw numbers come from
 * a Go template (`.ContainerStats.CPU`, `.MemUsage` and `.MemLimit` in bytes): `--format json` only
 * gives rounded text.
 */
export async function containerStats(
  ids: readonly string[],
  options: { readonly repoRoot: string; readonly signal?: AbortSignal | undefined },
): Promise<ContainerStats[]> {
  if (ids.length === 0) return [];
  const res = await podman(
    [
      "stats",
      "--no-stream",
      "--format",
      "{{.ContainerStats.ContainerID}} {{.ContainerStats.CPU}} {{.ContainerStats.MemUsage}} {{.ContainerStats.MemLimit}}",
      ...ids,
    ],
    // A container that stopped between ps and stats fails the call: report none rather than fail the caller.
    { ...options, allowFailure: true },
  );
  return parseStats(res.stdout);
}

/** Lines of `<id> <cpu percent> <memory bytes> <memory limit bytes>`; anything else is skipped. */
export function parseStats(stdout: string): ContainerStats[] {
  return stdout.split("\n").flatMap((line) => {
    const [id, ...rest] = line.trim().split(/\s+/);
    const numbers = rest.map(Number);
    const [cpuPercent, memoryBytes, memoryLimitBytes] = numbers;
    if (
      !id ||
      numbers.length !== 3 ||
      cpuPercent === undefined ||
      memoryBytes === undefined ||
      memoryLimitBytes === undefined ||
      !numbers.every(Number.isFinite)
    )
      return [];
    return [{ id, cpuPercent, memoryBytes, memoryLimitBytes }];
  });
}
