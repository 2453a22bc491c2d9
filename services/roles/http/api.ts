import express, { Router, type Request, type RequestHandler, type Response } from "express";
import { z } from "zod";
import { TERMINAL_STATUSES, type Build } from "../../domain/builds/build.js";
import type { BuildControl } from "../../domain/pipeline/build-control.js";
import type { TriggerService } from "../../domain/pipeline/triggers.js";
import { ROTATABLE_SECRETS, toolView, type ToolService } from "../../domain/tools/tool-service.js";
import { validateToolName, type Tool } from "../../domain/tools/tool.js";
import { ConflictError, InputError, NotFoundError } from "../../platform/errors.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { ClusterHealthSource } from "../../ports/cluster-health.js";
import type { RefResolver } from "../../ports/refs.js";
import { pageKeyOf, type StateStore } from "../../ports/store.js";
import { bearerAuth, requireAdmin, requireTool } from "./auth.js";
import { openApiDocument } from "./openapi.js";
import { BUILD_PAGES, pageOf, sendPage, TOOL_PAGES } from "./pagination.js";
import { envvarsRouter } from "./api-envvars.js";
import { renderRouter } from "./api-render.js";
import type { RenderOptions } from "../../domain/kubernetes/index.js";
import type { EnvVarService } from "../../domain/envvars/envvar-service.js";
import { COMPONENTS_SCHEMA_PATH, componentsJsonSchema } from "../../domain/config/index.js";

export interface ApiDeps {
  readonly store: StateStore;
  readonly tools: ToolService;
  readonly triggers: TriggerService;
  readonly builds: BuildControl;
  readonly logs: BuildLogs;
  readonly refs: RefResolver;
  readonly adminTokenHash: string;
  readonly urls: { publicUrl: string; webUrl: (tool: string) => string };
  /** Environment variables; mounted before the API's own JSON parser, with a larger body limit. */
  readonly envvars?: EnvVarService | undefined;
  /** Routers of optional features (GitLab linking), mounted after authentication, before the 404. */
  readonly routers?: readonly RequestHandler[] | undefined;
  /** Extra fields of `GET /api/v1/tools/:tool` (the GitLab link, without credentials). */
  readonly toolExtras?: ((tool: string) => Promise<Record<string, unknown>>) | undefined;
  /** Whether a tool is linked to a forge project (whose hook then holds its webhook secret). */
  readonly forgeLinked?: ((tool: string) => Promise<boolean>) | undefined;
  /** What `slipway render` renders with; the cluster profile passes its Ingress settings. */
  readonly renderOptions?: RenderOptions | undefined;
  /** The registry host pods pull from; `slipway render` then shows the (redacted) `registry-pull` Secret. */
  readonly pullRegistry?: string | undefined;
  /** The cluster profile's cluster: healthz reports it (the API answers while it is unreachable). */
  readonly cluster?: ClusterHealthSource | undefined;
}

const createTool = z.object({ name: z.string() });
const rotateSecret = z.object({ secret: z.enum(ROTATABLE_SECRETS) });
const startBuild = z.object({
  ref: z.string().min(1).max(255).optional(),
  force: z.boolean().optional(),
  no_cache: z.boolean().optional(),
});

/** REST API v1. Thin: parse, authorise, call a service, shape the answer. */
export function apiRouter(deps: ApiDeps): Router {
  const r = Router();
  r.get("/api/v1/openapi.json", (_req, res) => {
    res.json(openApiDocument(deps.urls.publicUrl));
  });
  r.get(COMPONENTS_SCHEMA_PATH, (_req, res) => {
    res.json(componentsJsonSchema());
  });
  r.get("/api/v1/healthz", (_req, res) => {
    const kubernetes = deps.cluster?.view();
    if (!kubernetes) return void res.json({ status: "ok" });
    // 200 either way: the API, git remote and builds work; `degraded` says deploys and jobs wait.
    const degraded = kubernetes.status !== "available" || kubernetes.warnings.length > 0;
    res.json({ status: degraded ? "degraded" : "ok", kubernetes });
  });
  if (deps.envvars) r.use(envvarsRouter({ ...deps, envvars: deps.envvars }));
  r.use("/api/v1", express.json({ limit: "64kb" }), bearerAuth(deps.store, deps.adminTokenHash));

  r.post("/api/v1/tools", async (req, res) => {
    requireAdmin(req);
    const body = parse(createTool, req.body);
    res.status(201).json(await deps.tools.create(body.name));
  });

  r.get("/api/v1/tools", async (req, res) => {
    const page = pageOf(req, TOOL_PAGES);
    const p = req.principal;
    // A tool's own token sees that tool only: one read, whatever the page.
    const own = p?.kind === "tool" ? await deps.store.getTool(p.tool) : undefined;
    const items =
      p?.kind === "tool"
        ? [own].filter((t): t is Tool => t !== undefined && !page.after)
        : await deps.store.listToolsAfter(page.after, page.limit + 1);
    sendPage(
      req,
      res,
      page,
      items,
      (t) => pageKeyOf(t, t.name),
      (t) => toolView(t, deps.urls),
    );
  });

  r.get("/api/v1/tools/:tool", async (req, res) => {
    const tool = await toolOf(req, deps);
    const [builds, releases, route, extras] = await Promise.all([
      deps.store.listBuilds(tool.name, 1),
      deps.store.listReleases(tool.name, 5),
      deps.store.getRoute(tool.name),
      deps.toolExtras?.(tool.name) ?? {},
    ]);
    const live = releases.find((rel) => rel.id === route?.release_id);
    res.json({
      ...toolView(tool, deps.urls),
      ...extras,
      latest_build: builds[0] ?? null,
      live_release: live ?? null,
    });
  });

  r.post("/api/v1/tools/:tool/rotate", async (req, res) => {
    const tool = await toolOf(req, deps);
    const { secret } = parse(rotateSecret, req.body);
    // A linked project's hook holds the secret too; linking again rotates it and updates the hook.
    if (secret === "webhook-secret" && (await deps.forgeLinked?.(tool.name)))
      throw new ConflictError(
        `tool "${tool.name}" is linked to a GitLab project whose hook holds this secret: run \`slipway tools link-gitlab ${tool.name}\` again, which rotates it and updates the hook`,
      );
    res.json(await deps.tools.rotate(tool.name, secret));
  });

  r.post("/api/v1/tools/:tool/builds", async (req, res) => {
    const tool = await toolOf(req, deps);
    const body = parse(startBuild, req.body ?? {});
    const source = tool.source;
    if (!source) throw new ConflictError(`tool "${tool.name}" has no source yet: push to it first`);
    const ref = body.ref ?? source.ref;
    const resolved = await deps.refs.resolve(source.url, ref, undefined, tool.name);
    if (!resolved) throw new NotFoundError(`ref "${ref}" does not exist in ${source.url}`);
    const result = await deps.triggers.push({
      tool,
      ref: resolved.ref,
      commit: resolved.commit,
      sourceUrl: source.url,
      defaultBranch: source.default_branch,
      trigger: { kind: "api", ref: resolved.ref, actor: req.principal?.kind ?? "api" },
      explicit: true,
      force: body.force ?? false,
      noCache: body.no_cache ?? false,
    });
    res.status(result.status === "queued" ? 202 : 200).json(result);
  });

  r.get("/api/v1/tools/:tool/builds", async (req, res) => {
    const tool = await toolOf(req, deps);
    const page = pageOf(req, BUILD_PAGES);
    const builds = await deps.store.listBuilds(tool.name, page.limit + 1, page.after);
    sendPage(req, res, page, builds, (b) => pageKeyOf(b, b.id), buildView);
  });

  // Builds by id alone: what `git push` tells the pusher to follow needs no tool name.
  r.get("/api/v1/builds/:id", async (req, res) => {
    res.json(buildView(await buildById(req, deps)));
  });
  r.post("/api/v1/builds/:id/cancel", async (req, res) => {
    const build = await buildById(req, deps);
    res.json(buildView(await deps.builds.cancel(build.id)));
  });
  r.get("/api/v1/builds/:id/logs", async (req, res) => {
    await sendLogs(req, res, deps, await buildById(req, deps));
  });

  r.get("/api/v1/tools/:tool/builds/:id", async (req, res) => {
    res.json(buildView(await buildOf(req, deps)));
  });

  r.post("/api/v1/tools/:tool/builds/:id/cancel", async (req, res) => {
    const build = await buildOf(req, deps);
    res.json(buildView(await deps.builds.cancel(build.id)));
  });

  r.get("/api/v1/tools/:tool/builds/:id/logs", async (req, res) => {
    await sendLogs(req, res, deps, await buildOf(req, deps));
  });

  r.get("/api/v1/tools/:tool/deployments", async (req, res) => {
    const tool = await toolOf(req, deps);
    const route = await deps.store.getRoute(tool.name);
    const releases = await deps.store.listReleases(tool.name, 100);
    res.json(releases.map((rel) => ({ ...rel, live: rel.id === route?.release_id })));
  });

  r.get("/api/v1/tools/:tool/deployments/:id", async (req, res) => {
    const tool = await toolOf(req, deps);
    const release = await deps.store.getRelease(String(req.params.id));
    if (!release || release.tool !== tool.name)
      throw new NotFoundError(`no deployment ${String(req.params.id)}`);
    res.json(release);
  });

  r.use(renderRouter(deps, deps.renderOptions)); // after bearerAuth: it reads req.principal
  for (const extra of deps.routers ?? []) r.use(extra);
  r.use("/api/v1", (_req, _res) => {
    throw new NotFoundError("no such API endpoint; see /api/v1/openapi.json");
  });
  return r;
}

async function sendLogs(req: Request, res: Response, deps: ApiDeps, build: Build): Promise<void> {
  if (req.query.follow === "true" || req.query.follow === "1") {
    await followLogs(req, res, deps, build);
    return;
  }
  const lines = await deps.logs.read(build.id);
  res.json({ build_id: build.id, status: build.status, lines: lines.map((l) => l.line) });
}

/** Plain text, one line per log line, streamed as it is written; ends when the build ends (the dashboard's too). */
export async function followLogs(
  req: Request,
  res: Response,
  deps: Pick<ApiDeps, "store" | "logs">,
  build: Build,
): Promise<void> {
  res.status(200).type("text/plain; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  res.flushHeaders();
  const controller = new AbortController();
  req.on("close", () => controller.abort());
  const done = async () => {
    const b = await deps.store.getBuild(build.id);
    return !b || TERMINAL_STATUSES.has(b.status);
  };
  for await (const l of deps.logs.follow(build.id, done, controller.signal)) res.write(`${l.line}\n`);
  const final = await deps.store.getBuild(build.id);
  if (final) res.write(`--- build ${final.status}${final.reason ? `: ${final.reason}` : ""}\n`);
  res.end();
}

async function toolOf(req: Request, deps: ApiDeps) {
  const name = validateToolName(String(req.params.tool));
  requireTool(req, name);
  return deps.tools.get(name);
}

async function buildOf(req: Request, deps: ApiDeps): Promise<Build> {
  const tool = await toolOf(req, deps);
  const build = await deps.store.getBuild(String(req.params.id));
  if (!build || build.tool !== tool.name)
    throw new NotFoundError(`no build ${String(req.params.id)} for ${tool.name}`);
  return build;
}

async function buildById(req: Request, deps: ApiDeps): Promise<Build> {
  const build = await deps.store.getBuild(String(req.params.id));
  if (!build) throw new NotFoundError(`no build ${String(req.params.id)}`);
  requireTool(req, build.tool);
  return build;
}

export function buildView(b: Build) {
  return {
    id: b.id,
    tool: b.tool,
    component: b.component,
    status: b.status,
    reason: b.reason ?? null,
    phase: b.phase ?? null,
    buildpack: b.buildpack ?? null,
    commit: b.commit,
    ref: b.ref,
    trigger: b.trigger,
    image: b.image ?? null,
    image_digest: b.image_digest ?? null,
    release_id: b.release_id ?? null,
    log_tail: b.log_tail ?? [],
    created_at: b.created_at,
    started_at: b.started_at ?? null,
    finished_at: b.finished_at ?? null,
  };
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new InputError(
      `invalid request body: ${i ? `${i.path.join(".") || "body"}: ${i.message}` : "invalid"}`,
    );
  }
  return parsed.data;
}
