import { mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { run, type RunResult } from "../../platform/process.js";

/**
 * The one way Slipway starts podman. Every call gets `CONTAINERS_CONF=<repo>/infra/containers.conf`
 * (runc, cgroupfs, file events, ulimits) instead of relying on /etc, and a minimal environment so
 * nothing of Slipway's own environment (tokens, secrets) reaches podman or the containers it starts.
 */
export interface PodmanOptions {
  /** Slipway's repository root (`config.repoRoot`): where `infra/containers.conf` lives. */
  readonly repoRoot: string;
  /** Resolve instead of rejecting on a non-zero exit. */
  readonly allowFailure?: boolean;
  readonly input?: string | Buffer;
  /** Aborting kills the podman client process (not necessarily what it started in a container). */
  readonly signal?: AbortSignal | undefined;
  readonly onLine?: (line: string, stream: "stdout" | "stderr") => void;
}

/** Runs `podman <args>` to completion; rejects with CommandError on a non-zero exit. */
export function podman(args: readonly string[], opts: PodmanOptions): Promise<RunResult> {
  return run("podman", args, {
    env: podmanEnv(opts.repoRoot),
    cwd: podmanWorkDir(),
    allowFailure: opts.allowFailure,
    input: opts.input,
    signal: opts.signal,
    onLine: opts.onLine,
  });
}

/** The environment podman runs with; exported for pipelines such as `tar | podman import`. */
export function podmanEnv(repoRoot: string): NodeJS.ProcessEnv {
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: os.homedir(),
    LANG: "C.UTF-8",
    CONTAINERS_CONF: path.join(repoRoot, "infra", "containers.conf"),
  };
}

let workDir: string | undefined;

/**
 * The working directory podman runs in. conmon writes an empty `oom` file into it when an exec session is
 * killed for memory; left to inherit, that is whatever directory Slipway was started in (a checkout).
 */
export function podmanWorkDir(): string {
  if (!workDir) {
    workDir = path.join(os.tmpdir(), `slipway-podman-${process.getuid?.() ?? 0}`);
    mkdirSync(workDir, { recursive: true, mode: 0o700 });
  }
  return workDir;
}
