import { SlipwayError } from "../../platform/errors.js";
import { newId } from "../../platform/ids.js";
import { freePort } from "../../platform/net.js";
import type {
  AppRuntime,
  ContainerUsage,
  ExitedProcess,
  ExitedProcesses,
  RunOnceResult,
  RunSpec,
  RunningApp,
} from "../../ports/runtime.js";
import { confinementArgs, type PodmanRuntimeOptions } from "./confinement.js";
import { withEnvFile } from "./env-file.js";
import { ContainerLimits } from "./limits.js";
import { networkGone } from "./network.js";
import { containerStats } from "./stats.js";
import { podman } from "./podman.js";
import { byDigest, pullFailure, pullImage, withRegistryAuth } from "./pull.js";

const LABEL = "io.slipway";
/** The CNB launcher our exporter puts in every image: applies the launch env, then runs a command. */
const LAUNCHER = "/cnb/lifecycle/launcher";
/** Processes a tool's container may have at once. */
const PIDS = 512;

export type { PodmanRuntimeOptions };

/**
 * Runs tool processes as podman containers on the local profile: non-root (the image's user), all
 * capabilities dropped, no privilege escalation, memory, CPU and pid limits, on the tool's own network
 * (see ToolNetworks), published on loopback only.
 * Each copy of a process (RunSpec.replica) is its own container, `<prefix>-<tool>-<process>-<release>-<n>`.
 */
export class PodmanRuntime implements AppRuntime, ExitedProcesses {
  constructor(private readonly options: PodmanRuntimeOptions) {}

  async start(spec: RunSpec): Promise<RunningApp> {
    const { repoRoot } = this.options;
    const { networks } = this.options;
    // A release's image, named by digest, is pulled by the `podman run` itself when it is not on the
    // machine: one podman process fewer on every deploy than `image exists`, `pull`, then `run`.
    const pullInRun = byDigest(spec.image);
    let [, network] = await Promise.all([
      pullInRun ? undefined : this.pull(spec.image),
      networks.ensure(spec.tool),
    ]);
    const name = `${this.options.namePrefix}-${spec.tool}-${spec.process}-${spec.releaseId}-${spec.replica ?? 0}`;
    // The host port is chosen here rather than by podman: asking podman which one it took afterwards
    // (`podman port`) cost every deploy one more podman start. Another process may take the port
    // between the choice and podman binding it; podman then refuses, and another port is tried.
    for (let attempt = 1; ; attempt++) {
      const hostPort = await (this.options.hostPort ?? freePort)();
      const args = (envFile: string, auth: readonly string[]) => [
        "run",
        "--detach",
        "--quiet",
        ...(pullInRun ? ["--pull=missing", ...auth] : ["--pull=never"]),
        "--name",
        name,
        // A leftover container of the same name (a deploy of this release cut short, or the attempt
        // before whose port was taken) is removed within the same call, not by a `podman rm` first.
        "--replace",
        ...this.common(spec, envFile, network),
        "--publish",
        `127.0.0.1:${hostPort}:${spec.port}`,
        ...(spec.command ? ["--entrypoint", LAUNCHER, spec.image, spec.command] : [spec.image]),
      ];
      const run = (auth: readonly string[]) =>
        withEnvFile(spec.env, (envFile) => podman(args(envFile, auth), { repoRoot, allowFailure: true }));
      const started = pullInRun ? await withRegistryAuth(this.options.registry, run) : await run([]);
      if (started.code !== 0) {
        if (pullInRun) {
          const pullFailed = await pullFailure(spec.image, started.stderr, repoRoot);
          if (pullFailed) throw pullFailed;
        }
        if (attempt < 3 && /address already in use/i.test(started.stderr)) continue;
        if (attempt < 3 && networkGone(started.stderr)) {
          networks.forget(spec.tool);
          network = await networks.ensure(spec.tool);
          continue;
        }
        throw new SlipwayError(
          "deploy_failed",
          `podman could not start ${spec.process}: ${started.stderr.trim().slice(-300)}`,
        );
      }
      return {
        // With --replace, podman first prints the name of the container it removed: the id is the last line.
        id: started.stdout.trim().split("\n").at(-1) ?? "",
        tool: spec.tool,
        process: spec.process,
        releaseId: spec.releaseId,
        replica: spec.replica ?? 0,
        address: { host: "127.0.0.1", port: hostPort },
      };
    }
  }

  /**
   * The container idles (`sleep infinity` under the init) and the command is a `podman exec` in it, as
   * build steps are: its cgroup outlives the command, so an OOM kill of the command itself is still
   * counted (ContainerLimits) when it has exited, and the container goes only afterwards.
   */
  async runOnce(
    spec: Omit<RunSpec, "port" | "command">,
    command: string,
    timeoutS: number,
    onLine?: (line: string) => void,
  ): Promise<RunOnceResult> {
    const { repoRoot } = this.options;
    await this.pull(spec.image);
    // Not labelled as a process of the tool's: `list()` must never route to (or stop) a one-shot run.
    const name = `${this.options.namePrefix}-${spec.tool}-${spec.process}-${spec.releaseId}-${newId().slice(0, 8)}`;
    const remove = () => podman(["rm", "-f", "-t", "0", name], { repoRoot, allowFailure: true });
    const started = await this.options.networks.retryIfGone(spec.tool, (network) =>
      withEnvFile(spec.env, (envFile) =>
        podman(
          [
            "run",
            "--detach",
            "--name",
            name,
            ...this.common(spec, envFile, network, false),
            "--entrypoint",
            "sleep",
            spec.image,
            "infinity",
          ],
          { repoRoot, allowFailure: true },
        ),
      ),
    );
    if (started.code !== 0) {
      await remove();
      throw new SlipwayError(
        "deploy_failed",
        `podman could not start ${spec.process}: ${started.stderr.trim().slice(-300)}`,
      );
    }
    const limits = ContainerLimits.watch(repoRoot, name, { memoryMb: spec.memoryMb, pids: PIDS });
    const tail: string[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void remove();
    }, timeoutS * 1000);
    try {
      const res = await podman(["exec", name, LAUNCHER, command], {
        repoRoot,
        allowFailure: true,
        onLine: (line) => {
          tail.push(line);
          if (tail.length > 40) tail.shift();
          onLine?.(line);
        },
      });
      const exceeded = timedOut ? undefined : await limits.check();
      return { code: timedOut ? undefined : res.code, timedOut, tail, ...(exceeded ? { exceeded } : {}) };
    } finally {
      clearTimeout(timer);
      limits.stop();
      await remove();
    }
  }

  async exec(id: string, command: string, timeoutS: number): Promise<{ ok: boolean; output: string }> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutS * 1000);
    try {
      const res = await podman(["exec", id, LAUNCHER, command], {
        repoRoot: this.options.repoRoot,
        allowFailure: true,
        signal: controller.signal,
      });
      return { ok: res.code === 0, output: `${res.stdout}${res.stderr}`.trim().slice(-300) };
    } catch (error) {
      return {
        ok: false,
        output: controller.signal.aborted ? `timed out after ${timeoutS} s` : String(error),
      };
    } finally {
      clearTimeout(timer);
    }
  }

  private pull(image: string): Promise<void> {
    return pullImage(image, this.options.registry, this.options.repoRoot);
  }

  /** Labels, network, confinement, limits and env shared by long-running and one-shot processes. */
  private common(
    spec: Omit<RunSpec, "port" | "command">,
    envFile: string,
    network: string,
    labelled = true,
  ): string[] {
    return [
      ...(labelled
        ? [
            "--label",
            `${LABEL}.owner=${this.options.namePrefix}`,
            "--label",
            `${LABEL}.tool=${spec.tool}`,
            "--label",
            `${LABEL}.process=${spec.process}`,
            "--label",
            `${LABEL}.release=${spec.releaseId}`,
            "--label",
            `${LABEL}.replica=${spec.replica ?? 0}`,
          ]
        : ["--label", `${LABEL}.once=${this.options.namePrefix}`]),
      // The tool's own network: its other processes can reach it there, no other tool's can.
      "--network",
      network,
      ...confinementArgs({ memoryMb: spec.memoryMb, cpus: spec.cpus, pids: PIDS }),
      // Values (secrets among them) in a 0600 file, not in argv where `ps` shows them.
      "--env-file",
      envFile,
    ];
  }

  async stop(id: string): Promise<void> {
    await podman(["rm", "-f", "-t", "5", id], { repoRoot: this.options.repoRoot, allowFailure: true });
  }

  async list(tool?: string): Promise<RunningApp[]> {
    const filters = ["--filter", `label=${LABEL}.owner=${this.options.namePrefix}`];
    if (tool) filters.push("--filter", `label=${LABEL}.tool=${tool}`);
    const res = await podman(["ps", "--format", "json", ...filters], { repoRoot: this.options.repoRoot });
    const rows = JSON.parse(res.stdout || "[]") as PodmanPs[];
    return rows.map((r) => {
      const published = r.Ports?.[0];
      return {
        id: r.Id,
        tool: r.Labels?.[`${LABEL}.tool`] ?? "",
        process: r.Labels?.[`${LABEL}.process`] ?? "",
        releaseId: r.Labels?.[`${LABEL}.release`] ?? "",
        // Containers started before replicas existed carry no index: they were the only copy.
        replica: Number(r.Labels?.[`${LABEL}.replica`] ?? 0),
        address: { host: published?.host_ip || "127.0.0.1", port: published?.host_port ?? 0 },
      };
    });
  }

  /** CPU and memory of a tool's running containers now (`podman stats --no-stream`); [] if podman cannot say. */
  async usage(tool: string): Promise<ContainerUsage[]> {
    const apps = await this.list(tool);
    const stats = await containerStats(
      apps.map((a) => a.id),
      { repoRoot: this.options.repoRoot },
    );
    return stats.flatMap(({ id, ...use }) => {
      const app = apps.find((a) => a.id === id);
      return app ? [{ process: app.process, replica: app.replica ?? 0, ...use }] : [];
    });
  }

  /**
   * This server's process containers that ended by themselves. Nothing of Slipway's leaves one exited:
   * a rollout, a stop and a delete remove theirs (`rm -f`), one-shot runs are not labelled as processes.
   */
  async exited(): Promise<ExitedProcess[]> {
    const res = await podman(
      [
        "ps",
        "--all",
        "--format",
        "json",
        "--filter",
        `label=${LABEL}.owner=${this.options.namePrefix}`,
        "--filter",
        "status=exited",
      ],
      { repoRoot: this.options.repoRoot },
    );
    const rows = JSON.parse(res.stdout || "[]") as (PodmanPs & ExitedPs)[];
    return rows.flatMap((r) => {
      const tool = r.Labels?.[`${LABEL}.tool`];
      const releaseId = r.Labels?.[`${LABEL}.release`];
      if (!tool || !releaseId) return [];
      return [
        {
          id: r.Id,
          tool,
          process: r.Labels?.[`${LABEL}.process`] ?? "",
          releaseId,
          replica: Number(r.Labels?.[`${LABEL}.replica`] ?? 0),
          exitCode: r.ExitCode ?? 0,
          ranMs: Math.max(0, (r.ExitedAt ?? 0) - (r.StartedAt ?? 0)) * 1000,
          exitedAt: (r.ExitedAt ?? 0) * 1000,
        },
      ];
    });
  }

  async logs(id: string, tail: number): Promise<string[]> {
    const res = await podman(["logs", "--tail", String(tail), id], {
      repoRoot: this.options.repoRoot,
      allowFailure: true,
    });
    return `${res.stdout}${res.stderr}`.trimEnd().split("\n").filter(Boolean).slice(-tail);
  }
}

interface PodmanPs {
  Id: string;
  Labels?: Record<string, string>;
  Ports?: { host_ip?: string; host_port?: number }[];
}

/** `podman ps --all` fields of a stopped container; times in seconds since the epoch. */
interface ExitedPs {
  ExitCode?: number;
  StartedAt?: number;
  ExitedAt?: number;
}
