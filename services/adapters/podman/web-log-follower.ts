import { spawn } from "node:child_process";
import type { Logger } from "../../platform/logger.js";
import type { ProcessLogs } from "../../ports/process-logs.js";
import type { AppRuntime, RunOnceResult, RunSpec, RunningApp } from "../../ports/runtime.js";
import { batchLines } from "./line-batcher.js";
import { podmanEnv, podmanWorkDir } from "./podman.js";

/** Lines go to the store in batches: a busy webservice costs one write per batch, never one per request. */
const FLUSH_MS = 500;
const FLUSH_LINES = 200;

/**
 * An AppRuntime that keeps the output of every web process it starts: `podman logs -f` is followed
 * beside the container (off the request path) and appended, batched, to {@link ProcessLogs}, where it
 * outlives the container. `resume()` picks the following up again after a server restart.
 */
export class LogFollowingRuntime implements AppRuntime {
  private readonly following = new Map<string, AbortController>();

  constructor(
    private readonly inner: AppRuntime,
    private readonly deps: { readonly logs: ProcessLogs; readonly repoRoot: string; readonly logger: Logger },
  ) {}

  async start(spec: RunSpec): Promise<RunningApp> {
    const app = await this.inner.start(spec);
    if (app.process === "web") this.follow(app);
    return app;
  }

  /** Follows the web processes already running (started before this server), from their last kept line on. */
  async resume(): Promise<number> {
    let n = 0;
    for (const app of await this.inner.list()) {
      if (app.process !== "web" || this.following.has(app.id)) continue;
      const since = await this.deps.logs.lastAppendAt(app.tool, app.releaseId).catch(() => undefined);
      this.follow(app, since);
      n++;
    }
    return n;
  }

  /** Stops every follower (the containers keep running). */
  close(): void {
    for (const c of this.following.values()) c.abort();
    this.following.clear();
  }

  stop(id: string): Promise<void> {
    return this.inner.stop(id);
  }
  list(tool?: string): Promise<RunningApp[]> {
    return this.inner.list(tool);
  }
  logs(id: string, tail: number): Promise<string[]> {
    return this.inner.logs(id, tail);
  }
  runOnce(
    spec: Omit<RunSpec, "port" | "command">,
    command: string,
    timeoutS: number,
    onLine?: (line: string) => void,
  ): Promise<RunOnceResult> {
    return this.inner.runOnce(spec, command, timeoutS, onLine);
  }
  exec(id: string, command: string, timeoutS: number): Promise<{ ok: boolean; output: string }> {
    return this.inner.exec(id, command, timeoutS);
  }

  /** Ends by itself when the container is removed; nothing of the output is held beyond one batch. */
  private follow(app: RunningApp, since?: string): void {
    const controller = new AbortController();
    this.following.set(app.id, controller);
    const log = this.deps.logger.child({ tool: app.tool, releaseId: app.releaseId });
    const args = ["logs", "-f", ...(since ? ["--since", since] : []), app.id];
    const child = spawn("podman", args, {
      env: podmanEnv(this.deps.repoRoot),
      cwd: podmanWorkDir(),
      stdio: ["ignore", "pipe", "pipe"],
      signal: controller.signal,
    });
    let writing = Promise.resolve();
    const end = batchLines(
      child,
      (lines) => {
        writing = writing.then(() =>
          this.deps.logs
            .append(app.tool, app.releaseId, lines)
            .catch((e) => log.warn({ err: e }, "webservice output could not be kept")),
        );
      },
      { flushMs: FLUSH_MS, flushLines: FLUSH_LINES },
    );
    child.on("error", (e) => {
      if (!controller.signal.aborted) log.warn({ err: e }, "could not follow webservice output");
    });
    child.on("close", () => {
      end();
      if (this.following.get(app.id) === controller) this.following.delete(app.id);
    });
  }
}
