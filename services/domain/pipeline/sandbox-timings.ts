import type { BuildSandbox, Sandbox } from "../../ports/sandbox.js";

/**
 * A build sandbox that times its container start and each step, so a build's log can say what its
 * detect and build phases are made of (a container start and a process start per step cost as much as
 * the buildpacks' own work on a code-only change).
 *
 * Its `close()` does not wait for the container's removal: nothing of the build is in the container
 * any more (its output is in bind mounts), so the removal runs beside the export and the deploy
 * instead of in front of them. `removed` is that removal, for those who must see it done.
 */
export class TimedSandbox implements BuildSandbox {
  private readonly steps: { label: string; ms: number }[] = [];
  private removing: Promise<void> = Promise.resolve();

  constructor(
    private readonly inner: BuildSandbox,
    /** Told when the removal that `close()` started fails (nobody awaits it). */
    private readonly onRemoveError: (error: unknown) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  async start(spec: Parameters<BuildSandbox["start"]>[0]): Promise<Sandbox> {
    const t0 = this.now();
    const sandbox = await this.inner.start(spec);
    this.steps.push({ label: "start", ms: this.now() - t0 });
    return {
      exec: async (command, options) => {
        const t = this.now();
        try {
          return await sandbox.exec(command, options);
        } finally {
          this.steps.push({ label: stepLabel(command), ms: this.now() - t });
        }
      },
      close: () => {
        this.removing = sandbox.close().catch(this.onRemoveError);
        return Promise.resolve();
      },
    };
  }

  /** The container's removal started by `close()` (resolved when none was started). */
  get removed(): Promise<void> {
    return this.removing;
  }

  /** `start 0.41 s, detect 0.18 s, slipway_nodejs build 0.52 s`: the steps in the order they ran. */
  summary(): string {
    return this.steps.map((s) => `${s.label} ${(s.ms / 1000).toFixed(2)} s`).join(", ");
  }
}

/** `detect` for the one exec running every detect, `<buildpack> build` for a buildpack's bin/build. */
function stepLabel(command: readonly string[]): string {
  const file = command.at(-1) ?? "";
  const bp = /\/cnb\/buildpacks\/([^/]+)\/[^/]+\/bin\/(\w+)$/.exec(file);
  if (bp) return `${bp[1]} ${bp[2]}`;
  if (file.endsWith("/detect/run")) return "detect";
  return command[0] ?? "exec";
}
