import { readFile } from "node:fs/promises";
import path from "node:path";
import type {
  BuildSandbox,
  BuildSandboxes,
  ExecResult,
  Sandbox,
  SandboxFound,
  SandboxSpec,
} from "../../ports/sandbox.js";
import { CommandError, run } from "../../platform/process.js";
import { confinementArgs } from "./confinement.js";
import { ContainerLimits } from "./limits.js";
import type { ToolNetworks } from "./network.js";
import { podman, podmanEnv, podmanWorkDir } from "./podman.js";

/** Processes a build may run at once by default: enough for npm and node-gyp, too few for a fork bomb. */
const PIDS_LIMIT = 2048;

const OWNER_LABEL = "io.slipway.owner";
const BUILD_LABEL = "io.slipway.build";
const BUILDER_LABEL = "io.slipway.builder";

/** The sandbox container of a build (one at a time: a re-run's `--replace`s a leftover one). */
export function sandboxName(buildId: string): string {
  return `slipway-build-${buildId}`;
}

/** A fixed podman network, or a tool's own (created again if it went away: see ToolNetworks). */
export type SandboxNetwork = string | { readonly networks: ToolNetworks; readonly tool: string };

/** Which server (owner, from containerOwner) and builder process start the sandboxes. */
export interface SandboxOwnership {
  readonly repoRoot: string;
  readonly owner: string;
  /** The BuilderRegistry id of this process; absent where sandboxes are only found and removed. */
  readonly builder?: string | undefined;
}

/**
 * Build sandboxes as podman containers. The container idles (`sleep infinity`) and every build step
 * is a `podman exec` in it, so detect and build share one container start (about a second) instead of
 * one per buildpack. Untrusted buildpack code runs as the given non-root user with every capability
 * dropped, no privilege escalation, and memory, CPU and process limits. The network stays on because
 * builds fetch from npm and PyPI; no registry credentials are mounted or passed. A build that hits its
 * memory or process limit (an OOM kill, a refused fork) has its container stopped at once: a fork bomb
 * held back by the pid limit would otherwise keep forking, and the builder slot, until the timeout.
 */
export class PodmanBuildSandbox implements BuildSandbox {
  private constructor(
    private readonly options: SandboxOwnership,
    private readonly network: SandboxNetwork,
  ) {}

  /**
   * `network`: the podman network the build runs on; the server always passes the tool's own (a tool's
   * build runs where it cannot reach another tool's containers, see ToolNetworks). Podman's default
   * network only for builds that belong to no tool (tests of the lifecycle alone).
   */
  static create(options: SandboxOwnership, network: SandboxNetwork = "bridge"): PodmanBuildSandbox {
    return new PodmanBuildSandbox(options, network);
  }

  async start(spec: SandboxSpec): Promise<Sandbox> {
    const pids = spec.pids ?? PIDS_LIMIT;
    const args = [
      "--detach",
      "--name",
      spec.name,
      "--label",
      "io.slipway.role=build",
      // Found by these after a crash: the server's own sandboxes only, by build and by the builder.
      "--label",
      `${OWNER_LABEL}=${this.options.owner}`,
      ...(spec.buildId === undefined ? [] : ["--label", `${BUILD_LABEL}=${spec.buildId}`]),
      ...(this.options.builder === undefined ? [] : ["--label", `${BUILDER_LABEL}=${this.options.builder}`]),
      "--user",
      spec.user,
      // The init also keeps `sleep` as PID 1 from making `rm -f -t 0` wait.
      ...confinementArgs({ memoryMb: spec.memoryMb, pids }),
      "--memory-swap",
      `${spec.memoryMb}m`,
      "--cpus",
      String(spec.cpus),
      "--pull",
      "never",
      // No tmpfs /tmp either: a read-only pod on Kubernetes has none unless a volume is mounted there.
      ...(spec.readOnlyRootfs ? ["--read-only", "--read-only-tmpfs=false"] : []),
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
    const run = (network: string) =>
      podman(["run", "--network", network, ...args], { repoRoot: this.options.repoRoot, allowFailure: true });
    const net = this.network;
    const started = typeof net === "string" ? await run(net) : await net.networks.retryIfGone(net.tool, run);
    if (started.code !== 0) throw new CommandError("podman", started);
    const runc = await runcContainer(started.stdout.trim().split("\n").at(-1) ?? "");
    // runc's state names the container's PID 1: one `podman inspect` fewer at every build's start.
    const limits = ContainerLimits.watch(
      this.options.repoRoot,
      spec.name,
      { memoryMb: spec.memoryMb, pids },
      runc?.pid,
    );
    return new PodmanSandbox(this.options.repoRoot, spec.name, limits, runc?.id);
  }
}

/**
 * The sandboxes this server started, found by their owner label: a killed builder leaves its sandbox
 * running (`sleep infinity`), and nothing else would ever remove it. Other servers' (and tests')
 * sandboxes on the same machine carry another owner and are never touched.
 */
export class PodmanBuildSandboxes implements BuildSandboxes {
  constructor(private readonly options: SandboxOwnership) {}

  async list(): Promise<SandboxFound[]> {
    const r = await podman(
      [
        "ps",
        "-a",
        "--filter",
        `label=${OWNER_LABEL}=${this.options.owner}`,
        "--format",
        `{{index .Labels "${BUILD_LABEL}"}} {{index .Labels "${BUILDER_LABEL}"}}`,
      ],
      { repoRoot: this.options.repoRoot },
    );
    return (
      r.stdout
        .split("\n")
        .map((line) => line.trim().split(/\s+/))
        // A missing label prints as nothing: sandboxes from before builds were labelled have no build id.
        .filter(([buildId]) => buildId)
        .map(([buildId, builder]) => ({ buildId: buildId!, builder: builder || undefined }))
    );
  }

  async remove(buildId: string, builder?: string): Promise<void> {
    const filters = [
      `label=${OWNER_LABEL}=${this.options.owner}`,
      `label=${BUILD_LABEL}=${buildId}`,
      ...(builder === undefined ? [] : [`label=${BUILDER_LABEL}=${builder}`]),
    ].flatMap((f) => ["--filter", f]);
    const found = await podman(["ps", "-a", "-q", ...filters], { repoRoot: this.options.repoRoot });
    const ids = found.stdout.split("\n").filter(Boolean);
    if (ids.length > 0) {
      await podman(["rm", "-f", "-t", "0", ...ids], { repoRoot: this.options.repoRoot, allowFailure: true });
    }
  }
}

/** Where runc keeps the state of the containers podman starts as root (podman's default for runc). */
const RUNC_ROOT = "/run/runc";

/**
 * The container as runc holds it, when its steps can be run with `runc exec` straight away: podman runs
 * as root, and runc keeps the container's state (id, PID 1) where podman left it. Undefined otherwise
 * (rootless podman keeps it elsewhere, in a user namespace), and steps go through `podman exec`.
 */
async function runcContainer(id: string): Promise<{ id: string; pid: number | undefined } | undefined> {
  if (process.getuid?.() !== 0 || !/^[0-9a-f]{64}$/.test(id)) return undefined;
  try {
    const state = JSON.parse(await readFile(path.join(RUNC_ROOT, id, "state.json"), "utf8")) as {
      init_process_pid?: unknown;
    };
    return { id, pid: typeof state.init_process_pid === "number" ? state.init_process_pid : undefined };
  } catch {
    return undefined;
  }
}

class PodmanSandbox implements Sandbox {
  private closed = false;

  constructor(
    private readonly repoRoot: string,
    private readonly name: string,
    private readonly limits: ContainerLimits,
    /** Set when steps run with `runc exec` (see runcContainer). */
    private readonly runcId: string | undefined,
  ) {}

  async exec(command: readonly string[], options: Parameters<Sandbox["exec"]>[1]): Promise<ExecResult> {
    // `runc exec` makes the same process `podman exec` does: the user, capabilities (none), no_new_privs,
    // seccomp filter, rlimits, cgroup and namespaces all come from the container's own state. It skips
    // the podman client's start and conmon's exec session: 0.14-0.3 s a step against 0.4-0.6 s.
    const runc = this.runcId !== undefined;
    const args = runc
      ? ["--root", RUNC_ROOT, "exec", "--cwd", options.workdir]
      : ["exec", "--workdir", options.workdir];
    if (options.user !== undefined) args.push("--user", options.user);
    for (const [k, v] of Object.entries(options.env)) args.push("--env", `${k}=${v}`);
    args.push(this.runcId ?? this.name, ...command);
    // Killing the podman client does not stop what it started inside the container, so an abort kills
    // the container itself: the build is over anyway, and nothing it started keeps running.
    const onAbort = () => void podman(["kill", this.name], { repoRoot: this.repoRoot, allowFailure: true });
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      options.signal?.throwIfAborted();
      if (this.limits.exceeded) return { exitCode: 137, exceeded: this.limits.exceeded };
      const how = { allowFailure: true, signal: options.signal, onLine: options.onOutput };
      const r = runc
        ? await run("runc", args, { ...how, env: podmanEnv(this.repoRoot), cwd: podmanWorkDir() })
        : await podman(args, { ...how, repoRoot: this.repoRoot });
      // Read the counters once more: the step may have ended by the kill the last poll has not seen.
      return { exitCode: r.code, exceeded: await this.limits.check() };
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.limits.stop();
    await podman(["rm", "-f", "-t", "0", this.name], { repoRoot: this.repoRoot, allowFailure: true });
  }
}
