import { SlipwayError, TransientError } from "../../platform/errors.js";
import type { AppRuntime, RunSpec, RunningApp } from "../../ports/runtime.js";
import { podman } from "./podman.js";

const LABEL = "io.slipway";

export interface PodmanRuntimeOptions {
  readonly repoRoot: string;
  /** Credentials for pulling from the local registry (`user:password`). */
  readonly registry: { readonly host: string; readonly username: string; readonly password: string };
  /** Prefix of container names, so test runs and servers on one machine do not see each other's apps. */
  readonly namePrefix: string;
}

/**
 * Runs tool processes as podman containers on the local profile: non-root (the image's user), all
 * capabilities dropped, no privilege escalation, memory and pid limits, published on loopback only.
 */
export class PodmanRuntime implements AppRuntime {
  constructor(private readonly options: PodmanRuntimeOptions) {}

  async start(spec: RunSpec): Promise<RunningApp> {
    const { registry, repoRoot } = this.options;
    const pull = await podman(
      [
        "pull",
        "--quiet",
        "--tls-verify=false",
        "--creds",
        `${registry.username}:${registry.password}`,
        spec.image,
      ],
      { repoRoot, allowFailure: true },
    );
    if (pull.code !== 0)
      throw new TransientError(`cannot pull ${spec.image}: ${pull.stderr.trim().slice(-300)}`);
    const name = `${this.options.namePrefix}-${spec.tool}-${spec.process}-${spec.releaseId}`;
    await podman(["rm", "-f", "-t", "0", name], { repoRoot, allowFailure: true });
    const args = [
      "run",
      "--detach",
      "--name",
      name,
      "--label",
      `${LABEL}.owner=${this.options.namePrefix}`,
      "--label",
      `${LABEL}.tool=${spec.tool}`,
      "--label",
      `${LABEL}.process=${spec.process}`,
      "--label",
      `${LABEL}.release=${spec.releaseId}`,
      // A tiny init as PID 1 forwards SIGTERM, so apps that ignore it as PID 1 still stop promptly.
      "--init",
      "--cap-drop",
      "all",
      "--security-opt",
      "no-new-privileges",
      "--memory",
      `${spec.memoryMb}m`,
      "--pids-limit",
      "512",
      "--publish",
      `127.0.0.1::${spec.port}`,
      ...Object.entries(spec.env).flatMap(([k, v]) => ["--env", `${k}=${v}`]),
      spec.image,
    ];
    const started = await podman(args, { repoRoot, allowFailure: true });
    if (started.code !== 0) {
      throw new SlipwayError(
        "deploy_failed",
        `podman could not start ${spec.process}: ${started.stderr.trim().slice(-300)}`,
      );
    }
    const id = started.stdout.trim();
    const port = await podman(["port", id, `${spec.port}/tcp`], { repoRoot });
    const match = /:(\d+)\s*$/.exec(port.stdout.trim().split("\n")[0] ?? "");
    if (!match) throw new TransientError(`podman published no port for ${name}: "${port.stdout.trim()}"`);
    return {
      id,
      tool: spec.tool,
      process: spec.process,
      releaseId: spec.releaseId,
      address: { host: "127.0.0.1", port: Number(match[1]) },
    };
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
        address: { host: published?.host_ip || "127.0.0.1", port: published?.host_port ?? 0 },
      };
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
