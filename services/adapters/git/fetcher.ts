import fs from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { AuthCallback } from "isomorphic-git";
import { InputError, SlipwayError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { FetchedSource, FetchRequest, SourceFetcher } from "../../ports/source.js";
import { checkoutTree } from "./checkout.js";
import { abortableHttpClient } from "./http-client.js";
import git, { Errors } from "./isomorphic-git.js";
import { PackStore } from "./pack-store.js";

export interface IsomorphicGitFetcherOptions {
  /** Sum of all regular files in a checkout, in bytes (the operator's SLIPWAY_MAX_SOURCE_MB). */
  readonly maxTotalBytes: number;
  /** Largest single file, in bytes. */
  readonly maxFileBytes: number;
  /** Parent of the temporary git directories; never inside a build's `dest`. Default: the OS temp dir. */
  readonly workDir?: string;
  /**
   * Hosts that may be fetched from although they are on loopback or private addresses (an operator's
   * GitLab, Slipway's own git remote); every other host must resolve to public addresses only.
   */
  readonly allowHosts: readonly string[];
  /** Depths tried, in order, when the ref has moved past the wanted commit. */
  readonly deepenSteps?: readonly number[];
  readonly logger: Logger;
}

const SHA1 = /^[0-9a-f]{40}$/;

/**
 * Fetches one exact commit with isomorphic-git: the ref at depth 1 into a throw-away bare git directory,
 * deepened step by step only when the branch has moved on since the push, then checked out (and
 * validated) into `dest` without `.git`.
 *
 * isomorphic-git cannot ask for a commit by id with `singleBranch` (isomorphic-git #714, #1160), hence
 * fetching the ref and looking for the commit in its recent history. isomorphic-git speaks the protocol;
 * the pack is streamed to disk, indexed and read by us (`PackStore`, docs/fetch.md), which is where its
 * fetch spent most of its time and memory.
 */
export class IsomorphicGitFetcher implements SourceFetcher {
  private constructor(private readonly options: Required<IsomorphicGitFetcherOptions>) {}

  static create(options: IsomorphicGitFetcherOptions): IsomorphicGitFetcher {
    return new IsomorphicGitFetcher(
      Object.freeze({
        workDir: os.tmpdir(),
        deepenSteps: [10, 50, 200],
        ...options,
      }),
    );
  }

  async fetch(request: FetchRequest, dest: string, signal?: AbortSignal): Promise<FetchedSource> {
    const commit = request.commit.toLowerCase();
    if (!SHA1.test(commit)) throw new InputError(`"${request.commit}" is not a full 40-character commit id`);
    const { url, auth } = splitCredentials(request.url, request.auth);
    const log = this.options.logger.child({ url, ref: request.ref, sha: commit });

    await mkdir(dest, { recursive: true });
    if ((await readdir(dest)).length > 0) throw new InputError(`fetch destination ${dest} is not empty`);
    await mkdir(this.options.workDir, { recursive: true });
    const gitdir = await mkdtemp(path.join(this.options.workDir, "slipway-git-"));
    const started = Date.now();
    try {
      const store = new PackStore(gitdir);
      await this.fetchUntilFound({ gitdir, store, url, auth, ref: request.ref, commit, signal, log });
      const parsed = parseCommit(store.need(commit, "commit"), commit);
      signal?.throwIfAborted();
      const result = await checkoutTree(store, parsed.tree, dest, this.options, signal);
      if (result.submodules.length > 0) {
        log.warn(
          { submodules: result.submodules },
          "submodules are not supported; their directories are left empty",
        );
      }
      log.info({ files: result.files, bytes: result.bytes, ms: Date.now() - started }, "source fetched");
      return { commit, commitTime: parsed.commitTime };
    } catch (error) {
      await emptyDir(dest);
      throw toSlipwayError(error, request, url, commit);
    } finally {
      await rm(gitdir, { recursive: true, force: true });
    }
  }

  private async fetchUntilFound(args: {
    gitdir: string;
    store: PackStore;
    url: string;
    auth: { username: string; password: string } | undefined;
    ref: string;
    commit: string;
    signal: AbortSignal | undefined;
    log: Logger;
  }): Promise<void> {
    const { gitdir, store, url, auth, ref, commit, signal, log } = args;
    // isomorphic-git's own object cache, for what it reads while deepening (its haves and shallows).
    const cache = {};
    await git.init({ fs, gitdir, bare: true });
    // fetch writes refs/remotes/origin/*, which needs a configured remote (NoRefspecError otherwise).
    await git.addRemote({ fs, gitdir, remote: "origin", url });
    const http = store.receive(abortableHttpClient(signal, this.options.allowHosts));
    // Called after a 401: give the credentials once; if they are refused, stop instead of retrying.
    const onAuth: AuthCallback = () => (auth ? { ...auth } : { cancel: true });
    const onAuthFailure: AuthCallback = () => ({ cancel: true });
    for (const depth of [1, ...this.options.deepenSteps]) {
      signal?.throwIfAborted();
      if (depth > 1) log.info({ depth }, "ref has moved past the commit; deepening");
      await git.fetch({
        fs,
        http,
        gitdir,
        cache,
        remote: "origin",
        ref,
        singleBranch: true,
        tags: false,
        depth,
        onAuth,
        onAuthFailure,
      });
      if (store.read(commit)?.type === "commit") return;
      // A shallow file lists the cut-off commits; none means we already hold the whole history.
      if (!(await isShallow(gitdir))) break;
    }
    throw new SlipwayError(
      "source_fetch_failed",
      `commit ${commit} is no longer reachable from ref ${ref} (looked ${Math.max(...this.options.deepenSteps)} commits back); was the branch force-pushed?`,
      { details: { ref, commit } },
    );
  }
}

/** The commit's tree and committer time: its `tree` line and the timestamp of its `committer` line. */
function parseCommit(data: Buffer, oid: string): { tree: string; commitTime: number } {
  const end = data.indexOf("\n\n");
  const head = data.toString("utf8", 0, end < 0 ? data.length : end);
  const tree = /^tree ([0-9a-f]{40})$/m.exec(head)?.[1];
  const time = /^committer .* (\d+) [+-]\d{4}$/m.exec(head)?.[1];
  if (!tree || !time) throw new SlipwayError("source_fetch_failed", `commit ${oid} is malformed`);
  return { tree, commitTime: Number(time) };
}

async function isShallow(gitdir: string): Promise<boolean> {
  try {
    return (await readFile(path.join(gitdir, "shallow"), "utf8")).trim() !== "";
  } catch {
    return false;
  }
}

/** Credentials in the URL's user-info are taken out of it, so the URL can be logged and put in errors. */
function splitCredentials(
  raw: string,
  given: FetchRequest["auth"],
): { url: string; auth: { username: string; password: string } | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch (cause) {
    throw new InputError(`"${raw.replace(/\/\/[^@/]*@/, "//")}" is not a URL`, { cause });
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new InputError(`only http(s) git URLs can be fetched, not ${parsed.protocol}`);
  }
  let auth = given ? { username: given.username, password: given.password } : undefined;
  if (parsed.username || parsed.password) {
    auth ??= { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
    parsed.username = "";
    parsed.password = "";
  }
  return { url: parsed.toString(), auth };
}

async function emptyDir(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(entries.map((e) => rm(path.join(dir, e), { recursive: true, force: true })));
}

function toSlipwayError(error: unknown, request: FetchRequest, url: string, commit: string): unknown {
  if (error instanceof SlipwayError) return error;
  if (error instanceof Error && error.name === "AbortError") {
    return new SlipwayError("cancelled", "source fetch cancelled", { cause: error });
  }
  const details = { url, ref: request.ref, commit };
  if (error instanceof Errors.UserCanceledError || isHttpStatus(error, 401) || isHttpStatus(error, 403)) {
    const which =
      request.auth || url !== request.url ? "the credentials given were refused" : "none were given";
    return new SlipwayError(
      "source_fetch_failed",
      `authentication failed for ${url}: the repository needs credentials and ${which}`,
      { cause: error, details },
    );
  }
  if (error instanceof Errors.NotFoundError && (error.data as { what?: string }).what === request.ref) {
    return new SlipwayError("source_fetch_failed", `ref ${request.ref} does not exist in ${url}`, {
      cause: error,
      details,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SlipwayError(
    "source_fetch_failed",
    `cannot fetch ${commit.slice(0, 12)} of ${url} at ${request.ref}: ${message}`,
    { cause: error, details },
  );
}

function isHttpStatus(error: unknown, status: number): boolean {
  return (
    error instanceof Errors.HttpError &&
    (error.data as { statusCode?: number } | undefined)?.statusCode === status
  );
}
