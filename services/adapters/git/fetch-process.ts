import { fork } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { InputError, SlipwayError, type ErrorCode } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { FetchedSource, FetchRequest, SourceFetcher } from "../../ports/source.js";
import type { IsomorphicGitFetcherOptions } from "./fetcher.js";

export interface ProcessFetcherOptions extends Omit<IsomorphicGitFetcherOptions, "logger" | "workDir"> {
  /** The compiled `fetch-child.js`: `dist/services/adapters/git/fetch-child.js` under the repository root. */
  readonly entry: string;
  /** Parent of the temporary git directories. Default: the OS temp dir. */
  readonly workDir?: string;
  /** Node binary; default: the one running this process. */
  readonly nodePath?: string;
  readonly logger: Logger;
}

/** What the parent sends the child, once. */
export interface ChildRequest {
  readonly request: FetchRequest;
  readonly dest: string;
  readonly options: Omit<IsomorphicGitFetcherOptions, "logger">;
}

export interface ChildLogLine {
  readonly log: {
    readonly level: "debug" | "info" | "warn" | "error";
    readonly fields: Record<string, unknown>;
    readonly msg: string;
  };
}

/** The child's last message. `peakRssKiB` is its own peak resident memory, for the log and the bench. */
export type ChildAnswer =
  | { readonly result: FetchedSource; readonly peakRssKiB: number }
  | {
      readonly error: {
        readonly code: ErrorCode;
        readonly message: string;
        readonly details: Record<string, unknown> | undefined;
      };
      readonly peakRssKiB: number;
    };

/**
 * V8's young generation may grow to 16 MiB semi-spaces under the allocation rate of indexing a pack and
 * inflating thousands of blobs, and keeps them; 1 MiB ones cost no measurable time here and about 45 MiB
 * less peak memory on the 8,000-file bench repository.
 */
const CHILD_EXEC_ARGV = ["--max-semi-space-size=1"];
const STDERR_KEPT = 4096;

/**
 * Runs each fetch in a short-lived Node process of its own. A fetch holds the pack, its index and much
 * garbage in memory; in the server that memory would stay with the server's heap after the build, and a
 * repository too big for memory would take the server down with it.
 * In a child it is given back when the child exits, the child's V8 can be tuned for the job, and a crash
 * fails only that build. Costs one Node start-up (about 0.1–0.3 s) per fetch.
 */
export class ProcessFetcher implements SourceFetcher {
  private constructor(private readonly options: ProcessFetcherOptions) {}

  static create(options: ProcessFetcherOptions): ProcessFetcher {
    return new ProcessFetcher(Object.freeze({ ...options }));
  }

  async fetch(request: FetchRequest, dest: string, signal?: AbortSignal): Promise<FetchedSource> {
    if (signal?.aborted) throw new SlipwayError("cancelled", "source fetch cancelled");
    const { entry, nodePath, logger, workDir = os.tmpdir(), ...limits } = this.options;
    await mkdir(workDir, { recursive: true });
    // The child's git directory lives in here, so that it is removed even when the child is killed.
    const scratch = await mkdtemp(path.join(workDir, "slipway-fetch-"));
    const child = fork(entry, [], {
      execPath: nodePath ?? process.execPath,
      execArgv: CHILD_EXEC_ARGV,
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      serialization: "json",
    });
    let stderr = "";
    child.stderr?.on(
      "data",
      (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-STDERR_KEPT)),
    );
    const kill = (): void => void child.kill("SIGKILL");
    signal?.addEventListener("abort", kill, { once: true });
    let answer: ChildAnswer | undefined;
    child.on("message", (message: ChildAnswer | ChildLogLine) => {
      if ("log" in message) logger[message.log.level](message.log.fields, message.log.msg);
      else answer = message;
    });
    try {
      const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
        (resolve, reject) => {
          child.once("error", reject);
          // "close", not "exit": it comes after the last IPC message has been delivered.
          child.once("close", (code, sig) => resolve({ code, signal: sig }));
          const message: ChildRequest = { request, dest, options: { ...limits, workDir: scratch } };
          child.send(message);
        },
      );
      if (signal?.aborted) throw new SlipwayError("cancelled", "source fetch cancelled");
      if (answer === undefined) {
        const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
        const last = stderr.trim().split("\n").slice(-3).join(" | ");
        throw new SlipwayError(
          "source_fetch_failed",
          `the fetch of ${request.commit.slice(0, 12)} at ${request.ref} stopped: its process ${how}${last ? ` (${last})` : ""}`,
          { details: { ref: request.ref, commit: request.commit } },
        );
      }
      logger.debug({ peakRssKiB: answer.peakRssKiB }, "fetch process finished");
      if ("result" in answer) return answer.result;
      throw toDomainError(answer.error);
    } catch (error) {
      await emptyDir(dest);
      throw error;
    } finally {
      signal?.removeEventListener("abort", kill);
      if (child.exitCode === null && child.signalCode === null) kill();
      await rm(scratch, { recursive: true, force: true });
    }
  }
}

function toDomainError(e: Extract<ChildAnswer, { error: unknown }>["error"]): Error {
  const options = e.details ? { details: e.details } : undefined;
  // The same classes as in process, so that `instanceof InputError` still holds.
  return e.code === "invalid_input"
    ? new InputError(e.message, options)
    : new SlipwayError(e.code, e.message, options);
}

async function emptyDir(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(entries.map((e) => rm(path.join(dir, e), { recursive: true, force: true })));
}
