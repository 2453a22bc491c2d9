import { spawn } from "node:child_process";
import type { BuildSandbox, ExecResult, Sandbox, SandboxSpec } from "../../ports/sandbox.js";

/**
 * The sandbox of a lifecycle that already runs inside the build container (slipway-lifecycle in the
 * stack's build image, locally in podman or as a Tekton step): the container is the confinement, with
 * its user, limits and mounts, so a step is simply a child process of this one. The spec's image,
 * user, mounts and limits were applied by whoever started the container and are not looked at here.
 */
export class ProcessBuildSandbox implements BuildSandbox {
  private constructor(private readonly baseEnv: Readonly<Record<string, string>>) {}

  /**
   * `baseEnv`: what every step starts from, as a container's own env is under `podman exec`; the
   * caller leaves out its own settings (SLIPWAY_*) so buildpacks see only the image's environment.
   */
  static create(baseEnv: Readonly<Record<string, string>>): ProcessBuildSandbox {
    return new ProcessBuildSandbox(baseEnv);
  }

  start(_spec: SandboxSpec): Promise<Sandbox> {
    return Promise.resolve(new ProcessSandbox(this.baseEnv));
  }
}

class ProcessSandbox implements Sandbox {
  private readonly running = new Set<number>();

  constructor(private readonly baseEnv: Readonly<Record<string, string>>) {}

  exec(command: readonly string[], options: Parameters<Sandbox["exec"]>[1]): Promise<ExecResult> {
    const [file, ...args] = command;
    if (file === undefined) return Promise.reject(new Error("an empty command cannot run"));
    options.signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      // Its own process group: an abort ends the step and everything it started (npm, its scripts).
      const child = spawn(file, args, {
        cwd: options.workdir,
        env: { ...this.baseEnv, ...options.env },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
      const pid = child.pid;
      if (pid !== undefined) this.running.add(pid);
      const onAbort = () => killGroup(pid);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const lines = (stream: "stdout" | "stderr") => {
        let pending = "";
        return {
          data: (chunk: Buffer) => {
            pending += chunk.toString("utf8");
            const parts = pending.split("\n");
            pending = parts.pop() ?? "";
            for (const line of parts) options.onOutput(line, stream);
          },
          end: () => {
            if (pending !== "") options.onOutput(pending, stream);
            pending = "";
          },
        };
      };
      const out = lines("stdout");
      const err = lines("stderr");
      child.stdout.on("data", out.data);
      child.stderr.on("data", err.data);
      child.on("error", (error) => {
        options.signal?.removeEventListener("abort", onAbort);
        if (pid !== undefined) this.running.delete(pid);
        reject(error);
      });
      child.on("close", (code, signal) => {
        options.signal?.removeEventListener("abort", onAbort);
        if (pid !== undefined) this.running.delete(pid);
        out.end();
        err.end();
        // A step killed by a signal exits as a shell reports it: 128 + the signal's number (137: SIGKILL).
        resolve({ exitCode: code ?? 128 + signalNumber(signal) });
      });
    });
  }

  close(): Promise<void> {
    for (const pid of this.running) killGroup(pid);
    this.running.clear();
    return Promise.resolve();
  }
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone: nothing is left to stop.
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = {
    SIGKILL: 9,
    SIGTERM: 15,
    SIGINT: 2,
    SIGSEGV: 11,
  };
  return (signal && numbers[signal]) ?? 1;
}
