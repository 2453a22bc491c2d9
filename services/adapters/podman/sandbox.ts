import type { BuildSandbox, ExecResult, Sandbox, SandboxSpec } from "../../ports/sandbox.js";
import { confinementArgs } from "./confinement.js";
import { podman } from "./podman.js";

/** Processes a build may run at once: enough for npm and node-gyp, too few for a fork bomb. */
const PIDS_LIMIT = 2048;

/**
 * Build sandboxes as podman containers. The container idles (`sleep infinity`) and every build step
 * is a `podman exec` in it, so detect and build share one container start (about a second) instead of
 * one per buildpack. Untrusted buildpack code runs as the given non-root user with every capability
 * dropped, no privilege escalation, and memory, CPU and process limits. The network stays on because
 * builds fetch from npm and PyPI; no registry credentials are mounted or passed. A tool's build runs on
 * the tool's own network (ToolNetworks), where it cannot reach another tool's containers.
 */
export class PodmanBuildSandbox implements BuildSandbox {
  private constructor(
    private readonly repoRoot: string,
    private readonly network: string,
  ) {}

  /**
   * `network`: the podman network the build runs on; the server always passes the tool's own. Podman's
   * default network only for builds that belong to no tool (tests of the lifecycle alone).
   */
  static create(config: { readonly repoRoot: string }, network = "bridge"): PodmanBuildSandbox {
    return new PodmanBuildSandbox(config.repoRoot, network);
  }

  async start(spec: SandboxSpec): Promise<Sandbox> {
    const args = [
      "run",
      "--detach",
      "--name",
      spec.name,
      "--label",
      "io.slipway.role=build",
      "--user",
      spec.user,
      // The init also keeps `sleep` as PID 1 from making `rm -f -t 0` wait.
      ...confinementArgs({ memoryMb: spec.memoryMb, pids: PIDS_LIMIT }),
      "--memory-swap",
      `${spec.memoryMb}m`,
      "--cpus",
      String(spec.cpus),
      "--network",
      this.network,
      "--pull",
      "never",
    ];
    for (const m of spec.mounts) {
      args.push(
        "--mount",
        `type=bind,source=${m.host},destination=${m.container}${m.readOnly ? ",ro=true" : ""}`,
      );
    }
    for (const [k, v] of Object.entries(spec.env)) args.push("--env", `${k}=${v}`);
    // A leftover container of the same name (a crashed earlier attempt) would make `run` fail;
    // --replace removes it within the same call, sparing every build a separate `podman rm`.
    args.push("--replace", "--entrypoint", "sleep", spec.image, "infinity");
    await podman(args, { repoRoot: this.repoRoot });
    return new PodmanSandbox(this.repoRoot, spec.name);
  }
}

class PodmanSandbox implements Sandbox {
  private closed = false;

  constructor(
    private readonly repoRoot: string,
    private readonly name: string,
  ) {}

  async exec(command: readonly string[], options: Parameters<Sandbox["exec"]>[1]): Promise<ExecResult> {
    const args = ["exec", "--workdir", options.workdir];
    for (const [k, v] of Object.entries(options.env)) args.push("--env", `${k}=${v}`);
    args.push(this.name, ...command);
    // Killing the podman client does not stop what it started inside the container, so an abort kills
    // the container itself: the build is over anyway, and nothing it started keeps running.
    const onAbort = () => void podman(["kill", this.name], { repoRoot: this.repoRoot, allowFailure: true });
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      options.signal?.throwIfAborted();
      const r = await podman(args, {
        repoRoot: this.repoRoot,
        allowFailure: true,
        signal: options.signal,
        onLine: options.onOutput,
      });
      return { exitCode: r.code };
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await podman(["rm", "-f", "-t", "0", this.name], { repoRoot: this.repoRoot, allowFailure: true });
  }
}
