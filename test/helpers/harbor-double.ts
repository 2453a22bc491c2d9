import { createHash, randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type Request, type Response } from "express";
import { z } from "zod";

/**
 * A stand-in for Harbor 2.x: the REST API v2.0 endpoints Slipway calls, with the request and response
 * shapes of Harbor's swagger (goharbor/harbor api/v2.0/swagger.yaml: ProjectReq, Project, RobotCreate,
 * RobotCreated, Robot, RobotSec, Repository, RetentionPolicy, Errors), Harbor's rules around them (a
 * project with repositories cannot be deleted: 412; a project takes one retention policy), and Harbor's registry side as far as pulling goes: the
 * distribution API behind the token service (`/service/token`, service `harbor-registry`), where a
 * robot is granted only the actions its permissions list on its own project's repositories.
 * Requests it does not understand get Harbor's 400/404/422; it records every API request.
 */

const PROJECT_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const ROBOT_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;

const projectReq = z
  .object({
    project_name: z.string().min(1).max(255),
    public: z.boolean().optional(),
    // ProjectMetadata's values are strings in Harbor's swagger ("true"/"false"), not booleans.
    metadata: z
      .object({ public: z.enum(["true", "false"]).optional() })
      .loose()
      .optional(),
    storage_limit: z.number().int().optional(),
    registry_id: z.number().int().nullable().optional(),
  })
  .strict();

const access = z.object({
  resource: z.string().min(1),
  action: z.string().min(1),
  effect: z.string().optional(),
});
const robotCreate = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    secret: z.string().optional(),
    level: z.enum(["system", "project"]),
    disable: z.boolean().optional(),
    duration: z.number().int(),
    permissions: z.array(
      z.object({ kind: z.enum(["system", "project"]), namespace: z.string(), access: z.array(access) }),
    ),
  })
  .strict();
const robotSec = z.object({ secret: z.string().optional() }).strict();

// RetentionPolicy (src/pkg/retention/policy/models.go); templates from src/pkg/retention/policy/rule/*.
const TEMPLATES = [
  "latestPushedK",
  "latestPulledN",
  "latestActiveK",
  "nDaysSinceLastPush",
  "nDaysSinceLastPull",
  "lastXDays",
  "always",
  "nothing",
] as const;
const selector = (decorations: [string, ...string[]]) =>
  z
    .object({
      kind: z.literal("doublestar"),
      decoration: z.enum(decorations),
      pattern: z.string().min(1),
      extras: z.string().optional(),
    })
    .strict();
const retentionRule = z
  .object({
    id: z.number().int().optional(),
    priority: z.number().int(),
    disabled: z.boolean(),
    action: z.literal("retain"),
    template: z.enum(TEMPLATES),
    params: z.record(z.string(), z.unknown()),
    tag_selectors: z.array(selector(["matches", "excludes"])).min(1),
    scope_selectors: z
      .object({ repository: z.array(selector(["repoMatches", "repoExcludes"])).min(1) })
      .strict(),
  })
  .strict()
  // The template's count is its own param: {latestPushedK: N}.
  .refine((r) => ["always", "nothing"].includes(r.template) || Number.isInteger(r.params[r.template]), {
    message: "params must hold the template's count",
  });
const retentionPolicy = z
  .object({
    id: z.number().int().optional(),
    algorithm: z.literal("or"),
    rules: z.array(retentionRule).min(1).max(15),
    trigger: z
      .object({
        kind: z.literal("Schedule"),
        // Harbor's cron (robfig/cron with seconds): six fields.
        settings: z.object({ cron: z.string().regex(/^\S+( \S+){5}$/) }).strict(),
        references: z.record(z.string(), z.unknown()).optional(),
      })
      .strict(),
    scope: z.object({ level: z.literal("project"), ref: z.number().int() }).strict(),
  })
  .strict();
export type RetentionPolicy = z.infer<typeof retentionPolicy>;

interface Project {
  project_id: number;
  name: string;
  public: boolean;
  retention_id?: number;
}
interface Robot {
  id: number;
  name: string;
  secret: string;
  level: string;
  project_id: number;
  duration: number;
  disable: boolean;
  permissions: z.infer<typeof robotCreate>["permissions"];
}

export interface HarborRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, unknown>;
  readonly body: unknown;
}

export interface HarborDouble {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `127.0.0.1:<port>`, as in image references. */
  readonly host: string;
  readonly admin: { readonly username: string; readonly password: string };
  readonly requests: HarborRequest[];
  project(name: string): Project | undefined;
  robots(): readonly Omit<Robot, "secret">[];
  /** The project's tag-retention policy, as Slipway sent it. */
  retention(project: string): RetentionPolicy | undefined;
  /** The project's repositories (`<project>/<name>`), from the manifests pushed to it. */
  repositories(project: string): string[];
  /** Stores a manifest as if it had been pushed: `repository` is `<project>/<name>`. Returns its digest. */
  seedManifest(repository: string, body: string): string;
  /** The next `count` API requests answer `status` with Harbor's error body. */
  failNext(status: number, count?: number): void;
  close(): Promise<void>;
}

export async function startHarborDouble(): Promise<HarborDouble> {
  const admin = { username: "admin", password: randomBytes(12).toString("hex") };
  const projects = new Map<string, Project>();
  const robots = new Map<number, Robot>();
  const retentions = new Map<number, RetentionPolicy>();
  const manifests = new Map<string, string>();
  const tokens = new Map<string, Map<string, Set<string>>>();
  const requests: HarborRequest[] = [];
  let faults: { status: number; count: number } | undefined;
  let nextId = 1;
  let url = "";

  const errors = (res: Response, status: number, code: string, message: string) =>
    res.status(status).json({ errors: [{ code, message }] });

  /** Basic credentials: the admin, or a robot by its full name and secret. */
  const who = (req: Request): { admin: true } | { robot: Robot } | undefined => {
    const header = req.headers.authorization ?? "";
    if (!header.startsWith("Basic ")) return undefined;
    const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
    const sep = decoded.indexOf(":");
    const [user, pass] = [decoded.slice(0, sep), decoded.slice(sep + 1)];
    if (user === admin.username && pass === admin.password) return { admin: true };
    const robot = [...robots.values()].find((r) => r.name === user && r.secret === pass && !r.disable);
    return robot ? { robot } : undefined;
  };

  const app = express();
  app.use(express.json({ type: () => true }));

  app.use("/api/v2.0", (req, res, next) => {
    requests.push({ method: req.method, path: req.path, query: { ...req.query }, body: req.body as unknown });
    if (faults && faults.count > 0) {
      faults.count--;
      return void errors(res, faults.status, faults.status >= 500 ? "UNKNOWN" : "ERROR", "injected failure");
    }
    // Slipway needs admin rights; robots may not manage projects or robots here.
    if (!("admin" in (who(req) ?? {}))) return void errors(res, 401, "UNAUTHORIZED", "unauthorized");
    next();
  });

  app.get("/api/v2.0/projects/:name", (req, res) => {
    const name = String(req.params.name);
    const project = req.header("x-is-resource-name") === "true" ? projects.get(name) : undefined;
    if (!project) return void errors(res, 404, "NOT_FOUND", `project ${name} not found`);
    res.json({
      project_id: project.project_id,
      name: project.name,
      metadata: {
        public: String(project.public),
        ...(project.retention_id ? { retention_id: String(project.retention_id) } : {}),
      },
    });
  });

  const repositoriesOf = (project: string) => [
    ...new Set(
      [...manifests.keys()].map((k) => k.slice(0, k.indexOf("@"))).filter((r) => r.startsWith(`${project}/`)),
    ),
  ];

  app.get("/api/v2.0/projects/:name/repositories", (req, res) => {
    const name = String(req.params.name);
    const project = req.header("x-is-resource-name") === "true" ? projects.get(name) : undefined;
    if (!project) return void errors(res, 404, "NOT_FOUND", `project ${name} not found`);
    const size = Math.min(Number(req.query.page_size ?? 10), 100);
    const page = Number(req.query.page ?? 1);
    const all = repositoriesOf(name);
    res.setHeader("x-total-count", String(all.length));
    res.json(
      all.slice((page - 1) * size, page * size).map((r, i) => ({
        id: i + 1,
        name: r,
        project_id: project.project_id,
        artifact_count: [...manifests.keys()].filter((k) => k.startsWith(`${r}@`)).length,
      })),
    );
  });

  app.delete("/api/v2.0/projects/:name/repositories/:repo", (req, res) => {
    const name = String(req.params.name);
    // Express decoded the path once; Harbor wants a `/` in the repository name encoded twice.
    const once = String(req.params.repo);
    if (once.includes("/")) return void errors(res, 404, "NOT_FOUND", "no such route");
    const repository = `${name}/${decodeURIComponent(once)}`;
    if (!repositoriesOf(name).includes(repository)) {
      return void errors(res, 404, "NOT_FOUND", `repository ${repository} not found`);
    }
    for (const key of [...manifests.keys()]) if (key.startsWith(`${repository}@`)) manifests.delete(key);
    res.status(200).end();
  });

  app.delete("/api/v2.0/projects/:name", (req, res) => {
    const name = String(req.params.name);
    const project = req.header("x-is-resource-name") === "true" ? projects.get(name) : undefined;
    if (!project) return void errors(res, 404, "NOT_FOUND", `project ${name} not found`);
    if (repositoriesOf(name).length > 0) {
      return void errors(
        res,
        412,
        "PRECONDITION",
        `the project ${name} contains repositories, can not be deleted`,
      );
    }
    projects.delete(name);
    for (const [id, r] of robots) if (r.project_id === project.project_id) robots.delete(id);
    if (project.retention_id) retentions.delete(project.retention_id);
    res.status(200).end();
  });

  app.post("/api/v2.0/retentions", (req, res) => {
    const parsed = retentionPolicy.safeParse(req.body);
    if (!parsed.success) return void errors(res, 400, "BAD_REQUEST", parsed.error.message);
    const project = [...projects.values()].find((p) => p.project_id === parsed.data.scope.ref);
    if (!project) return void errors(res, 400, "BAD_REQUEST", `project ${parsed.data.scope.ref} not found`);
    if (project.retention_id) {
      return void errors(
        res,
        400,
        "BAD_REQUEST",
        `project: ${project.project_id} already has retention policy ${project.retention_id}`,
      );
    }
    const id = nextId++;
    retentions.set(id, { ...parsed.data, id });
    project.retention_id = id;
    res.status(201).location(`/api/v2.0/retentions/${id}`).end();
  });

  app.post("/api/v2.0/projects", (req, res) => {
    const parsed = projectReq.safeParse(req.body);
    if (!parsed.success) return void errors(res, 400, "BAD_REQUEST", parsed.error.message);
    const { project_name: name, metadata } = parsed.data;
    if (!PROJECT_NAME.test(name)) return void errors(res, 400, "BAD_REQUEST", `invalid project name ${name}`);
    if (projects.has(name))
      return void errors(res, 409, "CONFLICT", `The project named ${name} already exists`);
    // Harbor's default for a project without metadata.public is private.
    const project = {
      project_id: nextId++,
      name,
      public: (metadata?.public ?? String(parsed.data.public ?? false)) === "true",
    };
    projects.set(name, project);
    res.status(201).location(`/api/v2.0/projects/${project.project_id}`).end();
  });

  app.post("/api/v2.0/robots", (req, res) => {
    const parsed = robotCreate.safeParse(req.body);
    if (!parsed.success) return void errors(res, 400, "BAD_REQUEST", parsed.error.message);
    const body = parsed.data;
    if (!ROBOT_NAME.test(body.name))
      return void errors(res, 400, "BAD_REQUEST", `invalid robot name ${body.name}`);
    if (body.level !== "project")
      return void errors(res, 403, "FORBIDDEN", "the double only makes project robots");
    // A project robot covers exactly one project (Harbor's robot controller checks this).
    const [permission, ...more] = body.permissions;
    if (!permission || more.length > 0 || permission.kind !== "project") {
      return void errors(
        res,
        400,
        "BAD_REQUEST",
        "a project level robot needs exactly one project permission",
      );
    }
    const project = projects.get(permission.namespace);
    if (!project) return void errors(res, 404, "NOT_FOUND", `project ${permission.namespace} not found`);
    const fullName = `robot$${project.name}+${body.name}`;
    if ([...robots.values()].some((r) => r.name === fullName)) {
      return void errors(res, 409, "CONFLICT", `robot ${fullName} already exists`);
    }
    const robot: Robot = {
      id: nextId++,
      name: fullName,
      secret: body.secret || randomBytes(16).toString("hex"),
      level: body.level,
      project_id: project.project_id,
      duration: body.duration,
      disable: body.disable ?? false,
      permissions: body.permissions,
    };
    robots.set(robot.id, robot);
    res.status(201).location(`/api/v2.0/robots/${robot.id}`).json({
      id: robot.id,
      name: robot.name,
      secret: robot.secret,
      creation_time: new Date().toISOString(),
      expires_at: -1,
    });
  });

  app.get("/api/v2.0/robots", (req, res) => {
    // q=Level=project,ProjectID=<id> (Harbor's query syntax: key=value pairs separated by commas).
    const q = Object.fromEntries(
      (typeof req.query.q === "string" ? req.query.q : "")
        .split(",")
        .filter(Boolean)
        .map((kv) => kv.split("=") as [string, string]),
    );
    const list = [...robots.values()].filter(
      (r) =>
        (q.Level === undefined || r.level === q.Level) &&
        (q.ProjectID === undefined || String(r.project_id) === q.ProjectID),
    );
    res.json(list.map(({ secret: _secret, ...rest }) => rest));
  });

  app.patch("/api/v2.0/robots/:id", (req, res) => {
    const robot = robots.get(Number(req.params.id));
    if (!robot) return void errors(res, 404, "NOT_FOUND", `robot ${req.params.id} not found`);
    const parsed = robotSec.safeParse(req.body);
    if (!parsed.success) return void errors(res, 400, "BAD_REQUEST", parsed.error.message);
    robot.secret = parsed.data.secret || randomBytes(16).toString("hex");
    res.json({ secret: robot.secret });
  });

  // ---- the registry side: token service and manifests -------------------------------------------

  app.get("/service/token", (req, res) => {
    const caller = who(req);
    if (!caller) return void errors(res, 401, "UNAUTHORIZED", "unauthorized");
    const scopes = ([] as unknown[]).concat(req.query.scope ?? []).map(String);
    const granted = new Map<string, Set<string>>();
    for (const scope of scopes) {
      const [type, name = "", actions = ""] = scope.split(":");
      if (type !== "repository") continue;
      const project = name.split("/")[0];
      const allowed =
        "admin" in caller
          ? actions.split(",")
          : actions
              .split(",")
              .filter((a) =>
                caller.robot.permissions.some(
                  (p) =>
                    p.namespace === project &&
                    p.access.some((x) => x.resource === "repository" && x.action === a),
                ),
              );
      // Harbor grants the intersection; an empty grant is still a token (the registry then says 401).
      granted.set(name, new Set(allowed));
    }
    const token = randomBytes(16).toString("hex");
    tokens.set(token, granted);
    res.json({ token, expires_in: 1800, issued_at: new Date().toISOString() });
  });

  app.get(/^\/v2\/(.+)\/manifests\/([^/]+)$/, (req, res) => {
    const [, repository = "", reference = ""] = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(req.path) ?? [];
    const bearer = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    const grant = tokens.get(bearer)?.get(repository);
    if (!grant?.has("pull")) {
      res.setHeader(
        "www-authenticate",
        `Bearer realm="${url}/service/token",service="harbor-registry",scope="repository:${repository}:pull"`,
      );
      return void errors(res, 401, "UNAUTHORIZED", "unauthorized to access repository");
    }
    const body = manifests.get(`${repository}@${reference}`);
    if (body === undefined) return void errors(res, 404, "MANIFEST_UNKNOWN", "manifest unknown");
    res.type("application/vnd.oci.image.manifest.v1+json").send(body);
  });

  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const port = (server.address() as AddressInfo).port;
  url = `http://127.0.0.1:${port}`;
  return {
    url,
    host: `127.0.0.1:${port}`,
    admin,
    requests,
    project: (name) => projects.get(name),
    robots: () => [...robots.values()].map(({ secret: _secret, ...rest }) => rest),
    retention(name) {
      const id = projects.get(name)?.retention_id;
      return id ? retentions.get(id) : undefined;
    },
    repositories: repositoriesOf,
    seedManifest(repository, body) {
      const digest = `sha256:${createHash("sha256").update(body).digest("hex")}`;
      manifests.set(`${repository}@${digest}`, body);
      return digest;
    },
    failNext(status, count = 1) {
      faults = { status, count };
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
