import express, { Router, type ErrorRequestHandler, type Request, type Response } from "express";
import type { EnvVar } from "../../../ports/envvars.js";
import type { ContainerUsage } from "../../../ports/runtime.js";
import type { UsageSample } from "../../../ports/usage.js";
import type { BuildLogs } from "../../../ports/logs.js";
import type { StateStore } from "../../../ports/store.js";
import type { JobService } from "../../../domain/jobs/job-service.js";
import type { ReleaseService } from "../../../domain/releases/release-service.js";
import type { WebserviceService } from "../../../domain/releases/webservice-service.js";
import { maskValue } from "../../../domain/envvars/envvars.js";
import { toolView, type ToolService } from "../../../domain/tools/tool-service.js";
import { validateToolName } from "../../../domain/tools/tool.js";
import { AuthError, ForbiddenError, NotFoundError } from "../../../platform/errors.js";
import type { Logger } from "../../../platform/logger.js";
import { hashSecret } from "../../../platform/secrets.js";
import { followLogs } from "../api.js";
import { principalOfHash, requireAdmin, requireTool } from "../auth.js";
import { classify } from "../errors.js";
import { CSS, JS } from "./assets.js";
import type { Html } from "./html.js";
import {
  adminPage,
  buildPage,
  envValuePage,
  errorPage,
  jobPage,
  rollbackPage,
  signInPage,
  toolPage,
  type HealthCheck,
  type Viewer,
} from "./pages.js";
import { SESSION_TTL_S, sessionCookie, sessionIdOf, Sessions, type SessionKv } from "./sessions.js";

export interface DashboardDeps {
  readonly store: StateStore;
  readonly tools: ToolService;
  readonly releases: ReleaseService;
  /** What serves the tool (replicas up) and its output. */
  readonly webservice?: Pick<WebserviceService, "status" | "logs"> | undefined;
  readonly jobs: JobService;
  readonly logs: BuildLogs;
  /** The API's env var service: names for the tool page, one value (masked) on request. */
  readonly envvars: {
    list(tool: string): Promise<readonly EnvVar[]>;
    get(tool: string, name: string): Promise<EnvVar>;
  };
  readonly sessions: SessionKv;
  readonly adminTokenHash: string;
  readonly urls: { publicUrl: string; webUrl: (tool: string) => string };
  readonly logger: Logger;
  /** Extra fields of the tool (the GitLab link, without credentials). */
  readonly toolExtras?: ((tool: string) => Promise<Record<string, unknown>>) | undefined;
  /** CPU and memory of the tool's containers now (the local profile's podman). */
  readonly usage?: ((tool: string) => Promise<readonly ContainerUsage[]>) | undefined;
  /** The tool's CPU and memory samples of the last hour (the local profile's deployer takes them). */
  readonly usageHistory?: { recent(tool: string): Promise<readonly UsageSample[]> } | undefined;
  /** Redis, registry, runtime and builders as the admin page shows them. */
  readonly health?: (() => Promise<HealthCheck[]>) | undefined;
}

/** Lines of the webservice's output the tool page shows (`slipway webservice logs` reads more). */
const OUTPUT_LINES = 50;
const ACTIVE = new Set(["pending", "running", "deploying"]);

declare module "express-serve-static-core" {
  interface Request {
    viewer?: Viewer;
  }
}

/**
 * The web dashboard at `/` and `/ui/`: server-rendered pages over the same services and authorization
 * as the API (a tool's token sees its tool only; the admin token sees all). Sign-in makes a session
 * (sessions.ts); state-changing forms carry the session's CSRF token and must come from this origin.
 */
export function dashboardRouter(deps: DashboardDeps): Router {
  const r = Router();
  const sessions = new Sessions(deps.sessions);
  const adminHash = Buffer.from(deps.adminTokenHash, "hex");
  const secure = deps.urls.publicUrl.startsWith("https:");
  const cookieName = sessionCookie(secure);
  const form = express.urlencoded({ extended: false, limit: "8kb" });

  const send = (res: Response, page: Html, code = 200) => {
    res.status(code).type("html").set(PAGE_HEADERS).send(page.text);
  };

  r.get("/ui/static/dashboard.css", (_req, res) => {
    res.type("css").set("Cache-Control", "max-age=300").send(CSS);
  });
  r.get("/ui/static/dashboard.js", (_req, res) => {
    res.type("js").set("Cache-Control", "max-age=300").send(JS);
  });

  // Every /ui page: who is signed in (if anyone); a session whose token was rotated is over.
  const who = async (req: Request): Promise<Viewer | undefined> => {
    const session = await sessions.get(sessionIdOf(req.headers.cookie, cookieName));
    if (!session) return undefined;
    const principal = await principalOfHash(deps.store, adminHash, session.tokenHash);
    return principal ? { principal, csrf: session.csrf } : undefined;
  };

  const home = async (req: Request, res: Response) => {
    const viewer = await who(req);
    if (!viewer) return send(res, signInPage());
    if (viewer.principal.kind === "tool")
      return res.redirect(303, `/ui/tools/${encodeURIComponent(viewer.principal.tool)}`);
    res.redirect(303, "/ui/admin");
  };
  r.get("/", home);
  r.get(["/ui", "/ui/"], home);

  r.post("/ui/sign-in", sameOrigin, form, async (req, res) => {
    const token = field(req, "token").trim();
    const hash = hashSecret(token);
    const principal = token ? await principalOfHash(deps.store, adminHash, hash) : undefined;
    if (!principal) return send(res, signInPage("Unknown or revoked token."), 401);
    const { id } = await sessions.create(hash);
    res.cookie(cookieName, id, {
      httpOnly: true,
      sameSite: "strict",
      secure,
      path: "/",
      maxAge: SESSION_TTL_S * 1000,
    });
    res.redirect(303, "/ui/");
  });

  // Everything below needs a session; the API's requireTool/requireAdmin then decide, as for a token.
  r.use("/ui", async (req, res, next) => {
    const viewer = await who(req);
    if (!viewer) {
      if (req.method === "GET" && !req.path.endsWith("/log")) return res.redirect(303, "/ui/");
      throw new AuthError("sign in first");
    }
    req.viewer = viewer;
    req.principal = viewer.principal;
    next();
  });
  const csrf = (req: Request) => {
    if (field(req, "csrf") !== req.viewer?.csrf)
      throw new ForbiddenError("the form is stale: reload the page");
  };

  r.post("/ui/sign-out", sameOrigin, form, async (req, res) => {
    csrf(req);
    await sessions.end(sessionIdOf(req.headers.cookie, cookieName));
    res.clearCookie(cookieName, { path: "/", secure });
    res.redirect(303, "/ui/");
  });

  const toolOf = async (req: Request) => {
    const name = validateToolName(String(req.params.tool));
    requireTool(req, name);
    return deps.tools.get(name);
  };
  const buildOf = async (req: Request) => {
    const tool = await toolOf(req);
    const build = await deps.store.getBuild(String(req.params.id));
    if (!build || build.tool !== tool.name) throw new NotFoundError(`no build ${String(req.params.id)}`);
    return build;
  };

  r.get("/ui/tools/:tool", async (req, res) => {
    const tool = await toolOf(req);
    const [builds, releases, jobs, vars, extras, serving, output, usage, history] = await Promise.all([
      deps.store.listBuilds(tool.name, 20),
      deps.releases.list(tool.name, 20),
      deps.jobs.list(tool.name),
      deps.envvars.list(tool.name),
      deps.toolExtras?.(tool.name) ?? {},
      deps.webservice?.status(tool.name).catch(() => undefined),
      // No output yet (nothing deployed) is the common case of an empty tool, not an error.
      deps.webservice?.logs(tool.name, undefined, OUTPUT_LINES).catch(() => undefined),
      deps.usage?.(tool.name).catch(() => undefined),
      deps.usageHistory?.recent(tool.name),
    ]);
    const view = toolView(tool, deps.urls);
    const gitlab = (extras as { gitlab?: { web_url?: string } | null }).gitlab ?? undefined;
    const flash =
      typeof req.query.rolled === "string" ? `Rollback queued as release ${req.query.rolled}.` : "";
    send(
      res,
      toolPage(
        {
          tool: { ...view, redeploy_url: `${deps.urls.publicUrl}/hooks/redeploy/${tool.name}` },
          gitlab: gitlab ? { project_url: gitlab.web_url } : undefined,
          live: releases.find((rel) => rel.live),
          builds,
          releases,
          jobs,
          webservice: serving && {
            state: serving.state,
            replicas: { ready: serving.replicas_ready, wanted: serving.replicas_wanted },
            note: serving.note,
            output: output?.lines.map((l) => l.line) ?? [],
            usage,
          },
          envNames: vars.map((v) => v.name).sort(),
          usageHistory: history,
          now: new Date(),
          flash,
        },
        req.viewer,
      ),
    );
  });

  // One value, masked, for the session that asks with its CSRF token: never on the tool page itself.
  r.post("/ui/tools/:tool/envvars/:name", sameOrigin, form, async (req, res) => {
    csrf(req);
    const tool = await toolOf(req);
    const { name, value } = await deps.envvars.get(tool.name, String(req.params.name));
    (req.log ?? deps.logger).info(
      { tool: tool.name, name, actor: req.viewer?.principal.kind },
      "environment variable shown masked in the dashboard",
    );
    send(res, envValuePage({ tool: tool.name, name, ...maskValue(value) }, req.viewer!));
  });

  r.get("/ui/tools/:tool/builds/:id", async (req, res) => {
    const build = await buildOf(req);
    const lines = (await deps.logs.read(build.id)).map((l) => l.line);
    send(res, buildPage({ tool: build.tool, build, lines }, req.viewer));
  });

  // The build's log as it is written, through the deploy to its outcome: what the page's script reads.
  r.get("/ui/tools/:tool/builds/:id/log", async (req, res) => {
    await followLogs(req, res, deps, await buildOf(req));
  });

  r.get("/ui/tools/:tool/rollback/:release", async (req, res) => {
    const tool = await toolOf(req);
    const target = await deps.releases.get(tool.name, String(req.params.release));
    const live = (await deps.releases.list(tool.name, 50)).find((rel) => rel.live);
    send(res, rollbackPage({ tool: tool.name, target, live }, req.viewer!));
  });

  r.post("/ui/tools/:tool/rollback/:release", sameOrigin, form, async (req, res) => {
    csrf(req);
    const tool = await toolOf(req);
    const actor = req.viewer?.principal.kind === "admin" ? "admin (dashboard)" : "tool (dashboard)";
    const made = await deps.releases.rollback(tool.name, String(req.params.release), actor);
    res.redirect(303, `/ui/tools/${encodeURIComponent(tool.name)}?rolled=${encodeURIComponent(made.id)}`);
  });

  r.get("/ui/tools/:tool/jobs/:name", async (req, res) => {
    const tool = await toolOf(req);
    const view = await deps.jobs.show(tool.name, String(req.params.name));
    const runs = await deps.jobs.logs(tool.name, view.job.name);
    send(res, jobPage({ tool: tool.name, view, runs, now: new Date() }, req.viewer));
  });

  r.get("/ui/admin", async (req, res) => {
    requireAdmin(req);
    const tools = await deps.store.listTools();
    const rows = await Promise.all(
      tools.map(async (t) => {
        const [builds, releases] = await Promise.all([
          deps.store.listBuilds(t.name, 20),
          deps.releases.list(t.name, 20),
        ]);
        return { name: t.name, builds, live: releases.find((rel) => rel.live) };
      }),
    );
    const queue = rows
      .flatMap((t) => t.builds.filter((b) => ACTIVE.has(b.status)))
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
    const health = (await deps.health?.()) ?? [];
    send(
      res,
      adminPage(
        {
          tools: rows.map((t) => ({ name: t.name, live: t.live, latest: t.builds[0] })),
          queue,
          health,
          now: new Date(),
        },
        req.viewer!,
      ),
    );
  });

  r.use("/ui", ((err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    const { status, message } = classify(err);
    if (status >= 500) (req.log ?? deps.logger).error({ err }, "dashboard request failed");
    send(res, errorPage(req.viewer, status, message), status);
  }) as ErrorRequestHandler);
  return r;
}

/** A urlencoded form field; "" when absent. */
function field(req: Request, name: string): string {
  const value = (req.body as Record<string, unknown> | undefined)?.[name];
  return typeof value === "string" ? value : "";
}

const PAGE_HEADERS = {
  "Cache-Control": "no-store",
  "Content-Security-Policy":
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "same-origin",
};

/** A state-changing post must come from this origin when the browser says where it came from. */
function sameOrigin(req: Request, _res: Response, next: (err?: unknown) => void): void {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== "null") {
    const host = req.headers.host;
    let ok = false;
    try {
      ok = new URL(origin).host === host;
    } catch {
      ok = false;
    }
    if (!ok) return next(new ForbiddenError("cross-origin form posts are refused"));
  } else if (origin === "null") return next(new ForbiddenError("cross-origin form posts are refused"));
  next();
}
