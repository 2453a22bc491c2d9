import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import express, { type NextFunction, type Request, type Response } from "express";
import type { Build } from "../../services/domain/builds/build.js";
import { waitFor } from "./apps.js";
import { gitHttpBackend } from "./git-http.js";

/**
 * A stand-in for GitLab's REST API v4, with the JSON shapes and status codes of GitLab's documentation
 * (doc/api/projects.md, project_webhooks.md, deploy_tokens.md, commits.md) for the endpoints Slipway
 * uses. It listens on a random loopback port and records every request so tests can assert on what
 * Slipway sent.
 *
 * Commit statuses follow GitLab's model (`Ci::CreateCommitStatusService`, `CommitStatus` state machine):
 * a status is found per (sha, ref, name) among the pending or running ones, or a new one is created; the
 * posted state fires an event (pending: enqueue, running: enqueue + run, success, failed: drop,
 * canceled: cancel), and an event that does not apply to the current state is a 400
 * "Cannot transition status via :<event> from :<state>".
 */

/** The push event of GitLab's webhook documentation (test/fixtures/gitlab), as the double's hooks send it. */
export const PUSH_HOOK = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "../fixtures/gitlab/gitlab-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;

/**
 * The record of a build a GitLab push to `main` of the double's project queued, still pending: what the
 * store holds before the builder takes it, for tests that drive statuses through the store.
 */
export function gitlabPushBuild(
  fields: { id: string; tool: string; commit: string; source_url: string } & Partial<Build>,
): Build {
  return {
    component: "web",
    ref: "refs/heads/main",
    trigger: { kind: "gitlab_push", ref: "refs/heads/main" },
    status: "pending",
    phase: "queued",
    reason: "push to the default branch",
    created_at: new Date().toISOString(),
    ...fields,
  };
}

/** A push event of the default branch of a double's project, as GitLab would send it for `commit`. */
export function pushEvent(project: { id: number; path: string; gitUrl: string }, commit: string): string {
  return JSON.stringify({
    ...PUSH_HOOK,
    ref: "refs/heads/main",
    before: "0".repeat(40),
    after: commit,
    checkout_sha: commit,
    project: {
      ...(PUSH_HOOK.project as object),
      id: project.id,
      git_http_url: project.gitUrl,
      default_branch: "main",
      path_with_namespace: project.path,
    },
  });
}

export type Role = "guest" | "reporter" | "developer" | "maintainer";
const LEVEL: Record<Role, number> = { guest: 10, reporter: 20, developer: 30, maintainer: 40 };

export interface DoubleToken {
  readonly role: Role;
  /** Defaults to `["api"]`; `read_api` tokens get GitLab's 403 insufficient_scope on writes. */
  readonly scopes?: readonly string[];
}

export interface RecordedRequest {
  readonly method: string;
  /** Path with the project id decoded, e.g. `/api/v4/projects/group/app/hooks`. */
  readonly path: string;
  readonly query: Record<string, unknown>;
  readonly body: Record<string, unknown>;
  /** Whether a PRIVATE-TOKEN header was sent (its value is not recorded). */
  readonly authenticated: boolean;
}

export interface DoubleHook {
  id: number;
  url: string;
  project_id: number;
  token: string | undefined;
  [event: string]: unknown;
}

export interface DoubleDeployToken {
  id: number;
  name: string;
  username: string;
  token: string;
  scopes: string[];
  revoked: boolean;
  expires_at: string | null;
}

export interface DoubleStatus {
  id: number;
  sha: string;
  ref: string;
  status: string;
  name: string;
  target_url: string | null;
  description: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  allow_failure: boolean;
  coverage: number | null;
  author: { id: number; username: string; name: string };
}

interface Project {
  id: number;
  path: string;
  defaultBranch: string | null;
  hooks: DoubleHook[];
  deployTokens: DoubleDeployToken[];
  statuses: DoubleStatus[];
}

/**
 * What the next N requests do instead of being answered: a status code, the connection closed, or held
 * open unanswered (a GitLab that hangs) until the client gives up or the double closes.
 */
export type Fault =
  | { readonly kind: "status"; readonly status: number }
  | { readonly kind: "drop" }
  | { readonly kind: "hang" };

const HOOK_EVENTS = [
  "push_events",
  "tag_push_events",
  "issues_events",
  "confidential_issues_events",
  "merge_requests_events",
  "note_events",
  "confidential_note_events",
  "job_events",
  "pipeline_events",
  "wiki_page_events",
  "deployment_events",
  "releases_events",
  "feature_flag_events",
  "emoji_events",
  "resource_access_token_events",
] as const;

const EVENT_FOR_STATE: Record<string, string> = {
  pending: "enqueue",
  running: "run",
  success: "success",
  failed: "drop",
  canceled: "cancel",
};
/** event → states it may start from (GitLab's CommitStatus state machine). */
const TRANSITIONS: Record<string, { from: readonly string[]; to: string }> = {
  enqueue: { from: ["created"], to: "pending" },
  run: { from: ["pending"], to: "running" },
  success: { from: ["created", "pending", "running"], to: "success" },
  drop: { from: ["created", "pending", "running"], to: "failed" },
  cancel: { from: ["created", "pending", "running"], to: "canceled" },
};

export class GitlabDouble {
  readonly requests: RecordedRequest[] = [];
  /** Requests met with a fault (`failNext`) rather than answered; they are not in `requests`. */
  faulted = 0;
  private readonly projects = new Map<number, Project>();
  private readonly tokens = new Map<string, DoubleToken>();
  private faults: { fault: Fault; remaining: number } | undefined;
  private nextId = 1;

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<GitlabDouble> {
    const app = express();
    // The double is built after listen() so that `url` is known; routes read it through this holder.
    const holder: { double?: GitlabDouble } = {};
    app.use((req, res, next) => holder.double!.handle(req, res, next));
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    const { port } = server.address() as AddressInfo;
    const double = new GitlabDouble(server, `http://127.0.0.1:${port}`);
    holder.double = double;
    double.router = double.buildRouter();
    return double;
  }

  addProject(options: { id: number; path: string; defaultBranch?: string | null }): void {
    this.projects.set(options.id, {
      id: options.id,
      path: options.path,
      defaultBranch: options.defaultBranch === undefined ? "main" : options.defaultBranch,
      hooks: [],
      deployTokens: [],
      statuses: [],
    });
  }

  addToken(token: string, options: DoubleToken): void {
    this.tokens.set(token, options);
  }

  /** The next `count` requests fail with `fault` (a status code, or the connection closed unanswered). */
  failNext(count: number, fault: Fault = { kind: "status", status: 500 }): void {
    this.faults = { fault, remaining: count };
  }

  hooks(projectId: number): readonly DoubleHook[] {
    return this.project(projectId).hooks;
  }

  deployTokens(projectId: number): readonly DoubleDeployToken[] {
    return this.project(projectId).deployTokens;
  }

  statuses(projectId: number, sha?: string): readonly DoubleStatus[] {
    return this.project(projectId).statuses.filter((s) => sha === undefined || s.sha === sha);
  }

  requestsTo(method: string, pathPattern: RegExp): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method && pathPattern.test(r.path));
  }

  /** The states Slipway posted for a commit, in the order the double received them. */
  postedStates(projectId: number, sha: string): string[] {
    return this.requestsTo("POST", new RegExp(`/projects/${projectId}/statuses/${sha}$`)).map(
      (r) => r.body.state as string,
    );
  }

  /** Waits until the commit has a status in `state`. */
  settled(projectId: number, sha: string, state: string, timeoutMs = 30_000): Promise<DoubleStatus> {
    return waitFor(
      `status ${state} on ${sha.slice(0, 8)}`,
      () => Promise.resolve(this.statuses(projectId, sha).find((s) => s.status === state)),
      timeoutMs,
      100,
    );
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private router: express.Router = express.Router();

  /**
   * Serves the bare repositories under `reposDir` (`<reposDir>/<project path>.git`) over smart HTTP at
   * `<url>/<project path>.git`, as GitLab does: HTTP Basic with a deploy token of that project that has
   * `read_repository` and is not revoked; anything else is 401.
   */
  serveRepositories(reposDir: string): void {
    this.git = gitHttpBackend(reposDir, (user, password, repository) => {
      const project = [...this.projects.values()].find((p) => p.path === repository);
      return (
        project !== undefined &&
        project.deployTokens.some(
          (t) =>
            !t.revoked && t.username === user && t.token === password && t.scopes.includes("read_repository"),
        )
      );
    });
  }

  private git: ((req: Request, res: Response) => void) | undefined;

  private handle(req: Request, res: Response, next: NextFunction): void {
    if (this.git !== undefined && /^\/.+?\.git\//.test(req.path)) {
      this.git(req, res);
      return;
    }
    if (this.faults !== undefined && this.faults.remaining > 0) {
      this.faults.remaining -= 1;
      this.faulted += 1;
      const { fault } = this.faults;
      if (fault.kind === "drop") {
        req.socket.destroy();
        return;
      }
      if (fault.kind === "hang") return;
      res.status(fault.status).json({ message: `${fault.status} Simulated failure` });
      return;
    }
    this.router(req, res, next);
  }

  private project(id: number): Project {
    const p = this.projects.get(id);
    if (p === undefined) throw new Error(`the double has no project ${id}`);
    return p;
  }

  private buildRouter(): express.Router {
    const r = express.Router();
    r.use(express.json({ limit: "1mb" }));
    r.use(express.urlencoded({ extended: true }));
    r.use((req, _res, next) => {
      this.requests.push({
        method: req.method,
        path: decodeURIComponent(req.path),
        query: { ...(req.query as Record<string, unknown>) },
        body: isRecord(req.body) ? { ...req.body } : {},
        authenticated: req.get("private-token") !== undefined,
      });
      next();
    });
    // Authentication comes before everything, as in GitLab's API (Grape `authenticate!`).
    r.use((req, res, next) => {
      const presented = req.get("private-token");
      const token = presented === undefined ? undefined : this.tokens.get(presented);
      if (token === undefined) {
        res.status(401).json({ message: "401 Unauthorized" });
        return;
      }
      res.locals.token = token;
      next();
    });

    const withProject =
      (minRole: Role, write: boolean, handler: (p: Project, req: Request, res: Response) => void) =>
      (req: Request, res: Response) => {
        const token = res.locals.token as DoubleToken;
        const project = this.findProject(String(req.params.id));
        // GitLab answers 404, not 403, for projects the user cannot see at all; members below the needed
        // role get 403.
        if (project === undefined) {
          res.status(404).json({ message: "404 Project Not Found" });
          return;
        }
        const scopes = token.scopes ?? ["api"];
        if (!scopes.includes("api") && (write || !scopes.includes("read_api"))) {
          res.status(403).json({
            error: "insufficient_scope",
            error_description: "The request requires higher privileges than provided by the access token.",
            scope: "api",
          });
          return;
        }
        if (LEVEL[token.role] < LEVEL[minRole]) {
          res.status(403).json({ message: "403 Forbidden" });
          return;
        }
        handler(project, req, res);
      };

    r.get(
      "/api/v4/projects/:id",
      withProject("guest", false, (p, _req, res) => {
        res.json(this.projectJson(p));
      }),
    );

    r.get(
      "/api/v4/projects/:id/hooks",
      withProject("maintainer", false, (p, _req, res) => {
        res.json(p.hooks.map((h) => this.hookJson(h)));
      }),
    );
    r.get(
      "/api/v4/projects/:id/hooks/:hook_id",
      withProject("maintainer", false, (p, req, res) => {
        const hook = p.hooks.find((h) => h.id === Number(req.params.hook_id));
        if (hook === undefined) res.status(404).json({ message: "404 Not found" });
        else res.json(this.hookJson(hook));
      }),
    );
    r.post(
      "/api/v4/projects/:id/hooks",
      withProject("maintainer", true, (p, req, res) => {
        const body = req.body as Record<string, unknown>;
        if (typeof body.url !== "string" || body.url === "") {
          res.status(400).json({ error: "url is missing" });
          return;
        }
        const hook: DoubleHook = { id: this.nextId++, url: body.url, project_id: p.id, token: undefined };
        applyHookFields(hook, body, true);
        p.hooks.push(hook);
        res.status(201).json(this.hookJson(hook));
      }),
    );
    r.put(
      "/api/v4/projects/:id/hooks/:hook_id",
      withProject("maintainer", true, (p, req, res) => {
        const hook = p.hooks.find((h) => h.id === Number(req.params.hook_id));
        if (hook === undefined) {
          res.status(404).json({ message: "404 Not found" });
          return;
        }
        applyHookFields(hook, req.body as Record<string, unknown>, false);
        res.json(this.hookJson(hook));
      }),
    );
    r.delete(
      "/api/v4/projects/:id/hooks/:hook_id",
      withProject("maintainer", true, (p, req, res) => {
        const index = p.hooks.findIndex((h) => h.id === Number(req.params.hook_id));
        if (index < 0) {
          res.status(404).json({ message: "404 Not found" });
          return;
        }
        p.hooks.splice(index, 1);
        res.status(204).end();
      }),
    );

    r.get(
      "/api/v4/projects/:id/deploy_tokens",
      withProject("maintainer", false, (p, _req, res) => {
        res.json(p.deployTokens.filter((t) => !t.revoked).map(deployTokenJson));
      }),
    );
    r.get(
      "/api/v4/projects/:id/deploy_tokens/:token_id",
      withProject("maintainer", false, (p, req, res) => {
        const token = p.deployTokens.find((t) => t.id === Number(req.params.token_id) && !t.revoked);
        if (token === undefined) res.status(404).json({ message: "404 Deploy Token Not Found" });
        else res.json(deployTokenJson(token));
      }),
    );
    r.post(
      "/api/v4/projects/:id/deploy_tokens",
      withProject("maintainer", true, (p, req, res) => {
        const body = req.body as Record<string, unknown>;
        const scopes = body.scopes;
        if (typeof body.name !== "string" || !Array.isArray(scopes) || scopes.length === 0) {
          res.status(400).json({ error: "name is missing, scopes is missing" });
          return;
        }
        const id = this.nextId++;
        const token: DoubleDeployToken = {
          id,
          name: body.name,
          username: typeof body.username === "string" ? body.username : `gitlab+deploy-token-${id}`,
          token: `gldt-double${id}${Math.random().toString(36).slice(2, 12)}`,
          scopes: scopes.map(String),
          revoked: false,
          expires_at: typeof body.expires_at === "string" ? body.expires_at : null,
        };
        p.deployTokens.push(token);
        res.status(201).json({ ...deployTokenJson(token), token: token.token });
      }),
    );
    r.delete(
      "/api/v4/projects/:id/deploy_tokens/:token_id",
      withProject("maintainer", true, (p, req, res) => {
        const token = p.deployTokens.find((t) => t.id === Number(req.params.token_id) && !t.revoked);
        if (token === undefined) {
          res.status(404).json({ message: "404 Deploy Token Not Found" });
          return;
        }
        token.revoked = true;
        res.status(204).end();
      }),
    );

    r.post(
      "/api/v4/projects/:id/statuses/:sha",
      withProject("developer", true, (p, req, res) => this.postStatus(p, req, res)),
    );
    r.get(
      "/api/v4/projects/:id/repository/commits/:sha/statuses",
      withProject("reporter", false, (p, req, res) => {
        res.json(p.statuses.filter((s) => s.sha === req.params.sha));
      }),
    );

    r.use((_req: Request, res: Response) => {
      res.status(404).json({ error: "404 Not Found" });
    });
    return r;
  }

  private postStatus(p: Project, req: Request, res: Response): void {
    const body = req.body as Record<string, unknown>;
    const state = typeof body.state === "string" ? body.state : "";
    const event = EVENT_FOR_STATE[state];
    if (event === undefined) {
      res.status(400).json({ error: "state does not have a valid value" });
      return;
    }
    for (const field of ["ref", "target_url", "description", "name"]) {
      const value = body[field];
      if (typeof value === "string" && value.length > 255) {
        res.status(400).json({ message: { [field]: ["is too long (maximum is 255 characters)"] } });
        return;
      }
    }
    const sha = String(req.params.sha);
    const name =
      typeof body.name === "string" ? body.name : typeof body.context === "string" ? body.context : "default";
    const ref = typeof body.ref === "string" ? body.ref : (p.defaultBranch ?? "main");
    const now = new Date().toISOString();
    let status = p.statuses.find(
      (s) =>
        s.sha === sha &&
        s.ref === ref &&
        s.name === name &&
        (s.status === "pending" || s.status === "running"),
    );
    const isNew = status === undefined;
    status ??= {
      id: this.nextId++,
      sha,
      ref,
      status: "created",
      name,
      target_url: null,
      description: null,
      created_at: now,
      started_at: null,
      finished_at: null,
      allow_failure: false,
      coverage: null,
      author: { id: 1, username: "slipway-bot", name: "Slipway" },
    };
    // GitLab's API fires `enqueue` (without the bang) before `run!`, so running works from created too.
    if (event === "run" && status.status === "created") status.status = "pending";
    const transition = TRANSITIONS[event]!;
    if (!transition.from.includes(status.status)) {
      res.status(400).json({ message: `Cannot transition status via :${event} from :${status.status}` });
      return;
    }
    status.status = transition.to;
    if (typeof body.target_url === "string") status.target_url = body.target_url;
    if (typeof body.description === "string") status.description = body.description;
    if (transition.to === "running") status.started_at = now;
    if (["success", "failed", "canceled"].includes(transition.to)) status.finished_at = now;
    if (isNew) p.statuses.push(status);
    res.status(201).json(status);
  }

  private findProject(id: string): Project | undefined {
    if (/^\d+$/.test(id)) return this.projects.get(Number(id));
    return [...this.projects.values()].find((p) => p.path === id);
  }

  private projectJson(p: Project): Record<string, unknown> {
    const name = p.path.split("/").at(-1) ?? p.path;
    return {
      id: p.id,
      description: null,
      name,
      name_with_namespace: p.path.split("/").join(" / "),
      path: name,
      path_with_namespace: p.path,
      created_at: "2024-01-01T00:00:00.000Z",
      default_branch: p.defaultBranch,
      ssh_url_to_repo: `git@127.0.0.1:${p.path}.git`,
      http_url_to_repo: `${this.url}/${p.path}.git`,
      web_url: `${this.url}/${p.path}`,
      visibility: "public",
    };
  }

  private hookJson(h: DoubleHook): Record<string, unknown> {
    // GitLab never returns the hook's token.
    const rest: Record<string, unknown> = { ...h };
    delete rest.token;
    return { ...rest, created_at: "2024-01-01T00:00:00.000Z", alert_status: "executable", url_variables: [] };
  }
}

function applyHookFields(hook: DoubleHook, body: Record<string, unknown>, creating: boolean): void {
  if (typeof body.url === "string") hook.url = body.url;
  for (const event of HOOK_EVENTS) {
    if (event in body) hook[event] = parseBool(body[event]);
    // GitLab's defaults: push events on, everything else off.
    else if (creating) hook[event] = event === "push_events";
  }
  if ("enable_ssl_verification" in body)
    hook.enable_ssl_verification = parseBool(body.enable_ssl_verification);
  else if (creating) hook.enable_ssl_verification = true;
  if (typeof body.token === "string") hook.token = body.token;
  if (typeof body.push_events_branch_filter === "string")
    hook.push_events_branch_filter = body.push_events_branch_filter;
}

function deployTokenJson(t: DoubleDeployToken): Record<string, unknown> {
  return {
    id: t.id,
    name: t.name,
    username: t.username,
    expires_at: t.expires_at,
    scopes: t.scopes,
    revoked: t.revoked,
    expired: false,
  };
}

function parseBool(value: unknown): boolean {
  return value === true || value === "true" || value === 1 || value === "1";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
