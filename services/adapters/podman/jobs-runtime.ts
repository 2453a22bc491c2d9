import { spawn } from "node:child_process";
import { TransientError } from "../../platform/errors.js";
import { JOB_COMMAND_WRAPPER } from "../../domain/jobs/runtime.js";
import type { JobExit, JobProcess, JobProcessSpec, JobsRuntime } from "../../ports/jobs-runtime.js";
import { confinementArgs, type PodmanRuntimeOptions } from "./confinement.js";
import { withEnvFile } from "./env-file.js";
import { ContainerLimits } from "./limits.js";
import { batchLines } from "./line-batcher.js";
import { podman, podmanEnv, podmanWorkDir } from "./podman.js";
import { pullImage } from "./pull.js";

const LABEL = "io.slipway";
/** Lines are handed on in batches, so a chatty job costs one store write per batch, not per line. */
const FLUSH_MS = 200;
const FLUSH_LINES = 200;
/** Processes a job's container may have at once. */
const PIDS = 512;

/** The same options as PodmanRuntime's: one registry, one name prefix per server. */
export type PodmanJobsRuntimeOptions = PodmanRuntimeOptions;

/**
 * Job processes as podman containers: non-root (the image's user), every capability dropped, no
 * privilege escalation, memory, CPU and pid limits, on the tool's own network, no published ports. The container is started detached,
 * its output followed with `podman logs -f`, its exit code read with `podman wait`, and it is removed
 * afterwards: the run's log in the store outlives it.
 */
export class PodmanJobsRuntime implements JobsRuntime {
  constructor(private readonly options: PodmanJobsRuntimeOptions) {}

  async start(spec: JobProcessSpec, onLines: (lines: string[]) => void): Promise<JobProcess> {
    const { repoRoot, registry, namePrefix, networks } = this.options;
    if (spec.image.startsWith(`${registry.host}/`)) await pullImage(spec.image, registry, repoRoot);
    const name = `${namePrefix}-job-${spec.tool}-${spec.job}-${spec.runId.slice(-8)}`;
    await podman(["rm", "-f", "-t", "0", name], { repoRoot, allowFailure: true });
    // The env goes in a 0600 file, never as `--env NAME=value` arguments that `ps` shows.
    const started = await networks.retryIfGone(spec.tool, (network) =>
      withEnvFile(spec.env, (envFile) =>
        podman(
          [
            "run",
            "--detach",
            "--name",
            name,
            "--label",
            `${LABEL}.owner=${namePrefix}`,
            "--label",
            `${LABEL}.role=job`,
            "--label",
            `${LABEL}.tool=${spec.tool}`,
            "--label",
            `${LABEL}.job=${spec.job}`,
            "--label",
            `${LABEL}.run=${spec.runId}`,
            "--network",
            network,
            ...confinementArgs({ memoryMb: spec.memoryMb, cpus: spec.cpus, pids: PIDS }),
            "--pull",
            "never",
            // The container's own log is only a buffer until it is read; bounded so a chatty job cannot fill the disk.
            "--log-driver",
            "k8s-file",
            "--log-opt",
            "max-size=10mb",
            "--env-file",
            envFile,
            "--entrypoint",
            "/bin/sh",
            spec.image,
            "-c",
            JOB_COMMAND_WRAPPER,
            "slipway-job",
            spec.command,
          ],
          { repoRoot, allowFailure: true },
        ),
      ),
    );
    if (started.code !== 0) {
      throw new TransientError(
        `podman could not start job ${spec.job}: ${started.stderr.trim().slice(-300)}`,
      );
    }
    const id = started.stdout.trim();
    const followed = this.follow(id, onLines);
    // A fork bomb or a memory hog is stopped at once. The job's command is the container's main process:
    // when the kernel kills that one for memory, the container (and its counters) go with it, so only
    // a poll that comes first sees it; a child killed for memory, or a refused fork, is always seen.
    const limits = ContainerLimits.watch(repoRoot, id, { memoryMb: spec.memoryMb, pids: PIDS });
    const exited = (async (): Promise<JobExit> => {
      const waited = await podman(["wait", id], { repoRoot, allowFailure: true });
      await limits.check();
      limits.stop();
      await followed;
      const code = Number(waited.stdout.trim().split("\n").pop());
      await podman(["rm", "-f", "-t", "0", id], { repoRoot, allowFailure: true });
      const exitCode = Number.isInteger(code) && code >= 0 ? code : 255;
      return limits.exceeded ? { exitCode, exceeded: limits.exceeded } : { exitCode };
    })();
    return {
      id,
      exited,
      kill: async () => {
        await podman(["stop", "-t", "3", id], { repoRoot, allowFailure: true });
      },
    };
  }

  async removeLeftovers(): Promise<number> {
    const { repoRoot, namePrefix } = this.options;
    const res = await podman(
      [
        "ps",
        "--all",
        "--quiet",
        "--filter",
        `label=${LABEL}.owner=${namePrefix}`,
        "--filter",
        `label=${LABEL}.role=job`,
      ],
      { repoRoot, allowFailure: true },
    );
    const ids = res.stdout.split("\n").filter(Boolean);
    if (ids.length > 0) await podman(["rm", "-f", "-t", "0", ...ids], { repoRoot, allowFailure: true });
    return ids.length;
  }

  /** Streams `podman logs -f` line by line without keeping the output: a continuous job runs for weeks. */
  private follow(id: string, onLines: (lines: string[]) => void): Promise<void> {
    return new Promise((resolve) => {
      const child = spawn("podman", ["logs", "-f", id], {
        env: podmanEnv(this.options.repoRoot),
        cwd: podmanWorkDir(),
        stdio: ["ignore", "pipe", "pipe"],
      });
      const end = batchLines(child, onLines, { flushMs: FLUSH_MS, flushLines: FLUSH_LINES });
      child.on("error", () => resolve());
      child.on("close", () => {
        end();
        resolve();
      });
    });
  }
}
