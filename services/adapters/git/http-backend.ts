import { existsSync } from "node:fs";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { access, readFile } from "node:fs/promises";
import path from "node:path";
import express, { type Request, type RequestHandler, type Router } from "express";
import { AuthError, InputError, NotFoundError, SlipwayError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import { validateToolName } from "../../domain/tools/tool.js";
import { serveCgi } from "./cgi.js";
import {
  HOOK_ENV,
  HOOK_SECRET_HEADER,
  HOOK_TOOL_HEADER,
  hookSecretMatches,
  installHooks,
  parseHookPayload,
  type RefUpdate,
} from "./hook.js";

export type { RefUpdate } from "./hook.js";

export interface GitRemoteOptions {
  /** Bare repositories live at `<reposDir>/<tool>.git`; absolute path. */
  readonly reposDir: string;
  /**
   * May `password` use `service` (`git-upload-pack`: fetch, `git-receive-pack`: push) on the tool's
   * repository? The username of HTTP Basic is ignored, as GitLab does for tokens.
   */
  readonly authorize: (tool: string, password: string, service: GitService) => Promise<boolean>;
  /** A push changed refs; the answer text is shown to the pusher as `remote: …` lines. */
  readonly onPush: (tool: string, updates: RefUpdate[]) => Promise<string>;
  readonly logger: Logger;
  /** Path the hook endpoint is mounted at (see `hookHandler`). Default `/internal/git-hook`. */
  readonly hookPath?: string;
  /**
   * Absolute URL the post-receive hook POSTs to. Default: this server's own socket address (the hook
   * runs on this machine, as a child of the request's git process) plus `hookPath`.
   */
  readonly hookUrl?: string;
  /** Shared by the hooks and `hookHandler`; default a random one per process, which is all it needs. */
  readonly hookSecret?: string;
  /** Default `/usr/lib/git-core/git-http-backend` (Debian's git package). */
  readonly httpBackend?: string;
  /** PATH for git and its hooks. Default `/usr/local/bin:/usr/bin:/bin`. */
  readonly path?: string;
  /**
   * Largest pack a push may send (git's `receive.maxInputSize`), in bytes; default unlimited. Git
   * refuses a bigger one while receiving it ("fatal: pack exceeds maximum allowed size") and keeps none of it.
   */
  readonly maxPushBytes?: number;
  /**
   * Largest a repository's objects may grow, in bytes, checked by the pre-receive hook with the push
   * still in quarantine; default unlimited.
   */
  readonly maxRepoBytes?: number;
}

export interface GitRemote {
  /** Mount at `/git`, before any body parser: git request bodies must reach git untouched. */
  readonly router: Router;
  /** Mount as `POST <hookPath>`, before any body parser: it reads the raw body itself. */
  readonly hookHandler: RequestHandler;
}

const ZERO_OID = /^0+$/;
const MAX_HOOK_BODY = 1024 * 1024;
type GitService = "git-upload-pack" | "git-receive-pack";
const SERVICES = new Set<string>(["git-upload-pack", "git-receive-pack"] satisfies GitService[]);

/**
 * Slipway's own smart-HTTP git remote, `/git/<tool>.git`, served by git's `http-backend` CGI. A push
 * creates the tool's bare repository on first use; its post-receive hook reports the changed refs to
 * `hookHandler`, which calls `onPush` and sends the answer back into the push's output.
 */
export function createGitRemote(options: GitRemoteOptions): GitRemote {
  const o = Object.freeze({
    hookPath: "/internal/git-hook",
    hookSecret: randomBytes(32).toString("base64url"),
    httpBackend: "/usr/lib/git-core/git-http-backend",
    path: "/usr/local/bin:/usr/bin:/bin",
    ...options,
    reposDir: path.resolve(options.reposDir),
  });
  const prepared = new Map<string, Promise<void>>();

  // First use of a repository by this process (re)writes its config and hook, so a moved node binary or
  // a newer hook script takes effect without a migration. Serialised per tool: two first pushes race.
  const prepare = (tool: string): Promise<void> => {
    let p = prepared.get(tool);
    // A repository removed since (`tools delete`, then a new tool of that name) is prepared afresh.
    if (!p || !existsSync(repoPath(o.reposDir, tool))) {
      p = prepareRepository(repoPath(o.reposDir, tool), o.maxPushBytes);
      prepared.set(tool, p);
      p.catch(() => prepared.delete(tool));
    }
    return p;
  };

  const router = express.Router();
  router.use(async (req, res, next) => {
    const match = /^\/([^/]+)\.git(\/.*)$/.exec(req.path);
    if (!match) return next();
    const tool = validateToolName(match[1]!);
    const suffix = match[2]!;
    const service = serviceOf(req, suffix);

    const password = basicPassword(req.headers.authorization);
    if (password === undefined || !(await o.authorize(tool, password, service))) {
      res.setHeader("WWW-Authenticate", 'Basic realm="slipway", charset="UTF-8"');
      throw new AuthError(`push and fetch to ${tool}.git need the tool's token as the HTTP password`);
    }

    const repo = repoPath(o.reposDir, tool);
    if (service === "git-receive-pack") await prepare(tool);
    else if (!(await exists(path.join(repo, "HEAD")))) {
      throw new NotFoundError(`${tool} has no repository here yet; push to it first`);
    }

    const query = req.method === "GET" ? `service=${service}` : "";
    const env: Record<string, string> = {
      PATH: o.path,
      GIT_PROJECT_ROOT: o.reposDir,
      GIT_HTTP_EXPORT_ALL: "1",
      // Built from the validated name and a known suffix, never from the raw URL.
      PATH_INFO: `/${tool}.git${suffix}`,
      REMOTE_USER: tool,
      REMOTE_ADDR: req.socket.remoteAddress ?? "",
      REQUEST_METHOD: req.method,
      QUERY_STRING: query,
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      [HOOK_ENV.url]: o.hookUrl ?? ownUrl(req, o.hookPath),
      [HOOK_ENV.secret]: o.hookSecret,
      [HOOK_ENV.tool]: tool,
    };
    if (o.maxRepoBytes !== undefined) env[HOOK_ENV.maxRepoBytes] = String(o.maxRepoBytes);
    // http-backend inflates gzip bodies itself and speaks protocol v2 when told the client asked for it.
    const encoding = req.headers["content-encoding"];
    if (encoding) env.HTTP_CONTENT_ENCODING = encoding;
    const length = req.headers["content-length"];
    if (length) env.CONTENT_LENGTH = length;
    const protocol = req.headers["git-protocol"];
    if (typeof protocol === "string") env.HTTP_GIT_PROTOCOL = protocol;

    await serveCgi(req, res, o.httpBackend, env, o.logger.child({ tool, service }));
  });

  const hookHandler: RequestHandler = async (req, res) => {
    const secret = req.headers[HOOK_SECRET_HEADER];
    if (!hookSecretMatches(typeof secret === "string" ? secret : undefined, o.hookSecret)) {
      throw new AuthError("invalid git hook secret");
    }
    const tool = validateToolName(String(req.headers[HOOK_TOOL_HEADER] ?? ""));
    const updates = parseHookPayload(await readBody(req, MAX_HOOK_BODY));
    await adoptDefaultBranch(repoPath(o.reposDir, tool), updates);
    o.logger.info({ tool, updates: updates.length }, "git push received");
    const answer = await o.onPush(tool, updates);
    res.type("text/plain").send(answer);
  };

  return { router, hookHandler };
}

/** The branch a repository's HEAD points at (`main`), or undefined when the tool has no repository. */
export async function readDefaultBranch(reposDir: string, tool: string): Promise<string | undefined> {
  let head: string;
  try {
    head = await readFile(path.join(repoPath(reposDir, tool), "HEAD"), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const m = /^ref: refs\/heads\/(\S+)\s*$/.exec(head);
  return m?.[1];
}

export function repoPath(reposDir: string, tool: string): string {
  return path.join(path.resolve(reposDir), `${validateToolName(tool)}.git`);
}

async function prepareRepository(repo: string, maxPushBytes: number | undefined): Promise<void> {
  if (!(await exists(path.join(repo, "HEAD")))) {
    await git(["init", "--bare", "--quiet", "--initial-branch=main", repo]);
  }
  const config: [string, string][] = [
    ["http.receivepack", "true"],
    // The fetcher asks for exact commits; let it, even when a branch has moved on.
    ["uploadpack.allowReachableSHA1InWant", "true"],
    ["uploadpack.allowAnySHA1InWant", "true"],
    ["receive.denyDeletes", "false"],
    ["receive.denyNonFastForwards", "false"],
  ];
  if (maxPushBytes !== undefined) config.push(["receive.maxInputSize", String(maxPushBytes)]);
  for (const [key, value] of config) await git(["config", "--file", path.join(repo, "config"), key, value]);
  await installHooks(repo);
}

/**
 * A bare repository's HEAD names `main` from birth; when the first push brings only `master` (or
 * anything else), point HEAD at what was pushed, as forges do, so the default branch is a real one.
 */
async function adoptDefaultBranch(repo: string, updates: readonly RefUpdate[]): Promise<void> {
  const head = await readFile(path.join(repo, "HEAD"), "utf8").catch(() => undefined);
  const current = head && /^ref: (refs\/heads\/\S+)\s*$/.exec(head)?.[1];
  if (!current) return;
  // A push to HEAD's own branch (almost every push) leaves it born: no git process needed to ask.
  if (updates.some((u) => u.ref === current && !ZERO_OID.test(u.new))) return;
  const born = await git(["--git-dir", repo, "rev-parse", "--verify", "--quiet", `${current}^{commit}`]).then(
    () => true,
    () => false,
  );
  if (born) return;
  const created = updates.filter((u) => u.ref.startsWith("refs/heads/") && !ZERO_OID.test(u.new));
  const pick =
    created.find((u) => u.ref === "refs/heads/main") ??
    created.find((u) => u.ref === "refs/heads/master") ??
    created[0];
  if (pick) await git(["--git-dir", repo, "symbolic-ref", "HEAD", pick.ref]);
}

function isService(s: string): s is GitService {
  return SERVICES.has(s);
}

function serviceOf(req: Request, suffix: string): GitService {
  if (suffix === "/info/refs" && req.method === "GET") {
    const service = new URLSearchParams(req.url.split("?")[1] ?? "").get("service") ?? "";
    if (!isService(service)) {
      throw new InputError(
        "only git's smart HTTP protocol is served (info/refs?service=git-upload-pack|git-receive-pack)",
      );
    }
    return service;
  }
  const service = suffix.slice(1);
  if (req.method === "POST" && isService(service)) return service;
  throw new NotFoundError(`no git endpoint ${req.method} ${suffix}`);
}

function basicPassword(header: string | undefined): string | undefined {
  const m = header && /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon === -1 ? undefined : decoded.slice(colon + 1);
}

function ownUrl(req: Request, hookPath: string): string {
  let host = req.socket.localAddress ?? "127.0.0.1";
  if (host.startsWith("::ffff:")) host = host.slice(7);
  else if (host.includes(":")) host = `[${host}]`;
  return `http://${host}:${req.socket.localPort}${hookPath}`;
}

async function readBody(req: Request, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new SlipwayError("payload_too_large", `hook payload over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

// execFile rather than platform `run`: these git commands read no stdin, and writing an empty stdin to a
// process that already exited raises EPIPE.
const execFileAsync = promisify(execFile);
function git(args: string[]): Promise<unknown> {
  return execFileAsync("git", args);
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}
