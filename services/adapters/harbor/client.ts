import { z } from "zod";
import {
  ConflictError,
  InputError,
  NotFoundError,
  SlipwayError,
  TransientError,
} from "../../platform/errors.js";

/** How Slipway reaches Harbor's REST API (`/api/v2.0`) as its own account. */
export interface HarborClientOptions {
  /** Harbor's origin, e.g. `https://harbor.example.org` (http only on loopback; env.ts checks). */
  readonly url: string;
  /** An account that may create projects and robot accounts (a Harbor admin, or a system robot). */
  readonly username: string;
  readonly password: string;
  readonly timeoutMs?: number | undefined;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
}

/** A robot account as Harbor returns it on creation: the only time its secret is shown. */
export interface CreatedRobot {
  readonly id: number;
  /** The full login name, `robot$<project>+<name>` (the prefix is Harbor's `robot_name_prefix`). */
  readonly name: string;
  readonly secret: string;
}

// The shapes Slipway reads, from Harbor's swagger (api/v2.0/swagger.yaml): Project, RobotCreated,
// Robot and RobotSec. Unknown fields are ignored; a missing one is Harbor answering something else.
const projectSchema = z.object({
  project_id: z.number().int(),
  name: z.string(),
  // ProjectMetadata: string values; `retention_id` names the project's tag-retention policy, if any.
  metadata: z.record(z.string(), z.string()).optional(),
});
const repositoryListSchema = z.array(z.object({ name: z.string() }));
const robotCreatedSchema = z.object({ id: z.number().int(), name: z.string(), secret: z.string().min(1) });
const robotListSchema = z.array(z.object({ id: z.number().int(), name: z.string() }));
const robotSecSchema = z.object({ secret: z.string().min(1) });
const errorsSchema = z.object({
  errors: z.array(z.object({ code: z.string().optional(), message: z.string().optional() })),
});

/**
 * The slice of Harbor's API v2.0 Slipway needs: private projects and project-level robot accounts.
 * HTTP Basic with Slipway's account on every request (Harbor's API takes no bearer tokens from us).
 */
export class HarborClient {
  readonly host: string;
  private readonly base: URL;

  private constructor(private readonly options: HarborClientOptions) {
    this.base = new URL("/api/v2.0/", options.url);
    this.host = this.base.host;
  }

  static create(options: HarborClientOptions): HarborClient {
    return new HarborClient(options);
  }

  /** The project's id, creating it private first when it is missing. Safe to call concurrently. */
  async ensureProject(
    name: string,
  ): Promise<{ projectId: number; created: boolean; retentionId: number | undefined }> {
    const existing = await this.getProject(name);
    if (existing)
      return { projectId: existing.project_id, created: false, retentionId: retentionOf(existing) };
    const res = await this.send("POST", "projects", `create project ${name}`, {
      // `metadata.public` is a string in Harbor's ProjectMetadata; the top-level `public` is deprecated.
      body: { project_name: name, metadata: { public: "false" } },
      accept: [201, 409],
    });
    await res.body?.cancel();
    const created = res.status === 201;
    // 409: another builder created it between the two calls, which is fine.
    const project = await this.getProject(name);
    if (!project)
      throw new TransientError(`Harbor ${this.host} created project ${name} but does not show it yet`);
    return { projectId: project.project_id, created, retentionId: retentionOf(project) };
  }

  /**
   * Gives the project a tag-retention policy keeping, in each repository, the `keep` most recently
   * pushed artifacts, run daily at midnight (Harbor's cron has a seconds field). Harbor takes a POST only
   * while the project has none; losing that race to another process is fine.
   */
  async createRetention(project: string, projectId: number, keep: number): Promise<void> {
    const doublestar = (decoration: string) => ({ kind: "doublestar", decoration, pattern: "**" });
    const policy = {
      algorithm: "or",
      rules: [
        {
          priority: 1,
          disabled: false,
          action: "retain",
          template: "latestPushedK",
          params: { latestPushedK: keep },
          tag_selectors: [doublestar("matches")],
          scope_selectors: { repository: [doublestar("repoMatches")] },
        },
      ],
      trigger: { kind: "Schedule", settings: { cron: "0 0 0 * * *" } },
      scope: { level: "project", ref: projectId },
    };
    try {
      const res = await this.send("POST", "retentions", `set the tag retention of project ${project}`, {
        body: policy,
        accept: [201],
      });
      await res.body?.cancel();
    } catch (error) {
      if (!(error instanceof InputError || error instanceof ConflictError)) throw error;
      const now = await this.getProject(project);
      if (!now || retentionOf(now) === undefined) throw error;
    }
  }

  /**
   * Deletes the project with its repositories (Harbor refuses to delete a project that still has any:
   * 412) and with them its robot accounts and retention policy. Gone already is fine.
   */
  async deleteProject(name: string): Promise<void> {
    const project = encodeURIComponent(name);
    const deleted = new Set<string>();
    for (;;) {
      const query = new URLSearchParams({ page: "1", page_size: "100" });
      const res = await this.send(
        "GET",
        `projects/${project}/repositories?${query.toString()}`,
        `list the repositories of project ${name}`,
        { headers: { "x-is-resource-name": "true" }, accept: [200, 404] },
      );
      if (res.status === 404) {
        await res.body?.cancel();
        break;
      }
      const repositories = await this.parse(res, repositoryListSchema, "repository list");
      if (repositories.length === 0) break;
      if (repositories.every((r) => deleted.has(r.name))) {
        throw new TransientError(`Harbor ${this.host} still lists deleted repositories of project ${name}`);
      }
      for (const { name: full } of repositories) {
        deleted.add(full);
        // Listed as `<project>/<rest>`; addressed without the project, a `/` in the rest double-encoded.
        const rest = full.startsWith(`${name}/`) ? full.slice(name.length + 1) : full;
        const del = await this.send(
          "DELETE",
          `projects/${project}/repositories/${encodeURIComponent(encodeURIComponent(rest))}`,
          `delete repository ${full}`,
          { accept: [200, 404] },
        );
        await del.body?.cancel();
      }
    }
    const res = await this.send("DELETE", `projects/${project}`, `delete project ${name}`, {
      headers: { "x-is-resource-name": "true" },
      accept: [200, 404],
    });
    await res.body?.cancel();
  }

  /** A robot that may only pull from `project`, never expiring; ConflictError if the name is taken. */
  async createPullRobot(project: string, name: string, description: string): Promise<CreatedRobot> {
    const res = await this.send("POST", "robots", `create robot account ${name} in project ${project}`, {
      body: {
        name,
        description,
        level: "project",
        duration: -1,
        disable: false,
        permissions: [
          { kind: "project", namespace: project, access: [{ resource: "repository", action: "pull" }] },
        ],
      },
      accept: [201],
    });
    return this.parse(res, robotCreatedSchema, "robot account");
  }

  /**
   * The project's robot created with the short name `name`, if any. Harbor lists it under its full
   * name, `<robot_name_prefix><project>+<name>`; the prefix is configurable, so only the end is compared.
   */
  async findRobot(projectId: number, name: string): Promise<{ id: number; name: string } | undefined> {
    const query = new URLSearchParams({ q: `Level=project,ProjectID=${projectId}`, page_size: "100" });
    const res = await this.send(
      "GET",
      `robots?${query.toString()}`,
      `list the robot accounts of project ${projectId}`,
      {
        accept: [200],
      },
    );
    const robots = await this.parse(res, robotListSchema, "robot list");
    return robots.find((r) => r.name.endsWith(`+${name}`));
  }

  /** A new secret for the robot, generated by Harbor; the old one stops working. */
  async refreshRobotSecret(robotId: number): Promise<string> {
    const res = await this.send(
      "PATCH",
      `robots/${robotId}`,
      `refresh the secret of robot account ${robotId}`,
      {
        body: {},
        accept: [200],
      },
    );
    return (await this.parse(res, robotSecSchema, "robot secret")).secret;
  }

  private async getProject(name: string): Promise<z.infer<typeof projectSchema> | undefined> {
    const res = await this.send("GET", `projects/${encodeURIComponent(name)}`, `read project ${name}`, {
      headers: { "x-is-resource-name": "true" },
      accept: [200, 404],
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    return this.parse(res, projectSchema, "project");
  }

  private async parse<T>(res: Response, schema: z.ZodType<T>, what: string): Promise<T> {
    const parsed = schema.safeParse(await res.json().catch(() => undefined));
    if (!parsed.success) {
      throw new SlipwayError("internal", `Harbor ${this.host} answered with an unexpected ${what}`, {
        details: { issues: parsed.error.issues.map((i) => i.path.join(".")) },
      });
    }
    return parsed.data;
  }

  private async send(
    method: string,
    path: string,
    what: string,
    options: { body?: unknown; headers?: Record<string, string>; accept: readonly number[] },
  ): Promise<Response> {
    const { username, password } = this.options;
    const headers: Record<string, string> = {
      accept: "application/json",
      authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`,
      ...options.headers,
    };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await (this.options.fetch ?? fetch)(new URL(path, this.base), {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        // Credentials must not follow a redirect to another host.
        redirect: "error",
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
    } catch (error) {
      throw new TransientError(`Harbor ${this.host} unreachable (${what}): ${messageOf(error)}`);
    }
    if (options.accept.includes(res.status)) return res;
    return this.fail(res, what);
  }

  /** Harbor's errors (`{"errors":[{code,message}]}`) as Slipway errors; the password is never in them. */
  private async fail(res: Response, what: string): Promise<never> {
    const text = await res.text().catch(() => "");
    let reason = "";
    try {
      const parsed = errorsSchema.safeParse(JSON.parse(text));
      if (parsed.success) {
        reason = parsed.data.errors.map((e) => `${e.code ?? "ERROR"}: ${e.message ?? ""}`.trim()).join("; ");
      }
    } catch {
      // Not JSON (a proxy's error page): the status says enough.
    }
    const message = `Harbor ${this.host} refused to ${what}: HTTP ${res.status}${reason ? ` ${reason.slice(0, 300)}` : ""}`;
    const details = { status: res.status };
    if (res.status === 429 || res.status >= 500) throw new TransientError(message);
    switch (res.status) {
      case 401:
        throw new SlipwayError(
          "unauthorized",
          `${message}; check SLIPWAY_REGISTRY_USERNAME and SLIPWAY_REGISTRY_PASSWORD`,
          { details },
        );
      case 403:
        throw new SlipwayError(
          "forbidden",
          `${message}; Slipway's Harbor account must be allowed to create projects and robot accounts`,
          { details },
        );
      case 404:
        throw new NotFoundError(message);
      case 409:
        throw new ConflictError(message, { details });
      default:
        throw new InputError(message, { details });
    }
  }
}

function retentionOf(project: z.infer<typeof projectSchema>): number | undefined {
  const id = Number(project.metadata?.retention_id);
  return Number.isInteger(id) && id > 0 ? id : undefined;
}

const messageOf = (e: unknown) =>
  e instanceof Error
    ? e.cause instanceof Error
      ? `${e.message}: ${e.cause.message}`
      : e.message
    : String(e);
