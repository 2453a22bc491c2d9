import { BUILD_PAGES, JOB_PAGES, TOOL_PAGES, type PageLimits } from "./pagination.js";

/**
 * The OpenAPI 3.1 document served at /api/v1/openapi.json. Kept by hand beside the router; the API test
 * checks that every route the router answers is described here.
 */

export function openApiDocument(publicUrl: string) {
  const error = { $ref: "#/components/responses/Error" };
  const toolParam = { name: "tool", in: "path", required: true, schema: { type: "string" } };
  const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } };
  const jobNameParam = { name: "name", in: "path", required: true, schema: { type: "string" } };
  const envNameParam = {
    name: "name",
    in: "path",
    required: true,
    schema: { type: "string", pattern: "^[A-Z_][A-Z0-9_]*$" },
  };
  return {
    openapi: "3.1.0",
    info: { title: "Slipway API", version: "1" },
    servers: [{ url: publicUrl }],
    security: [{ bearer: [] }],
    paths: {
      "/api/v1/tools": {
        get: {
          summary: "List tools visible to the token, in pages",
          parameters: pageParams(TOOL_PAGES),
          responses: { "200": page("Tool"), "400": error, "401": error },
        },
        post: {
          summary: "Create a tool (admin token); returns its secrets once",
          requestBody: json({ type: "object", required: ["name"], properties: { name: { type: "string" } } }),
          responses: { "201": ok("CreatedTool"), "400": error, "409": error },
        },
      },
      "/api/v1/tools/{tool}": {
        get: {
          summary: "Show a tool",
          parameters: [toolParam],
          responses: { "200": ok("Tool"), "404": error },
        },
        delete: {
          summary:
            "Delete a tool (admin token) and everything of it: containers, network, images, git repository, env vars, tokens, jobs, logs, releases, routes, builds. Refused (409) while a build is queued or running, unless force=true, which cancels them first",
          parameters: [
            toolParam,
            { name: "force", in: "query", required: false, schema: { type: "boolean" } },
          ],
          responses: {
            "200": { description: "{name, removed: string[], cancelled_builds: string[]}" },
            "403": error,
            "404": error,
            "409": error,
          },
        },
      },
      "/api/v1/tools/{tool}/rotate": {
        post: {
          summary:
            "Replace a leaked secret (token, webhook-secret or redeploy-url); the old one stops working at once, the new one is returned once. 409 for the webhook secret of a GitLab-linked tool: link it again instead",
          parameters: [toolParam],
          requestBody: json({
            type: "object",
            required: ["secret"],
            properties: { secret: { type: "string", enum: ["token", "webhook-secret", "redeploy-url"] } },
          }),
          responses: {
            "200": {
              description: "{name, token} | {name, webhook_secret, webhook_url} | {name, redeploy_url}",
            },
            "400": error,
            "404": error,
            "409": error,
          },
        },
      },
      "/api/v1/tools/{tool}/gitlab": {
        get: {
          summary: "The tool's GitLab link, or null (never a token)",
          parameters: [toolParam],
          responses: { "200": { description: "{tool, gitlab: GitlabLink | null}" }, "404": error },
        },
        post: {
          summary:
            "Link a GitLab project: rotates the webhook secret, registers the project hook, creates a read_repository deploy token; credentials are stored encrypted",
          parameters: [toolParam],
          requestBody: json({
            type: "object",
            required: ["url", "project", "token"],
            properties: {
              url: { type: "string", description: "GitLab base URL" },
              project: { type: ["string", "integer"], description: "numeric id or group/project path" },
              token: { type: "string", description: "access token, scope api, role Maintainer" },
            },
          }),
          responses: { "201": ok("GitlabLink"), "400": error, "401": error, "403": error, "404": error },
        },
        delete: {
          summary: "Unlink: remove the hook and revoke the deploy token at GitLab, forget the link",
          parameters: [toolParam],
          responses: { "200": { description: "{tool, unlinked, gitlab: GitlabLink | null}" }, "400": error },
        },
      },
      "/api/v1/tools/{tool}/builds": {
        get: {
          summary: "List builds, newest first, in pages",
          parameters: [toolParam, ...pageParams(BUILD_PAGES)],
          responses: { "200": page("Build"), "400": error },
        },
        post: {
          summary: "Start a build of the tool's ref (or another ref)",
          parameters: [toolParam],
          requestBody: json({
            type: "object",
            properties: {
              ref: { type: "string" },
              force: { type: "boolean" },
              no_cache: { type: "boolean", description: "build without cached layers; implies force" },
            },
          }),
          responses: { "202": ok("TriggerResult"), "200": ok("TriggerResult"), "409": error },
        },
      },
      "/api/v1/tools/{tool}/releases": {
        get: {
          summary: "List the tool's releases, newest first (failed ones with reason and last probe)",
          parameters: [toolParam],
          responses: { "200": ok("Release", true) },
        },
      },
      "/api/v1/tools/{tool}/releases/{id}": {
        get: {
          summary: "Show a release",
          parameters: [toolParam, idParam],
          responses: { "200": ok("Release"), "404": error },
        },
      },
      "/api/v1/tools/{tool}/releases/{id}/logs": {
        get: {
          summary:
            "A release's deploy log: a rollback's or restart's own, a push's release's in its build's log",
          parameters: [toolParam, idParam],
          responses: { "200": { description: "{release_id, log_id, lines}" }, "404": error },
        },
      },
      "/api/v1/tools/{tool}/rollback": {
        post: {
          summary:
            "Deploy an earlier release's image and config again as a new release, without a build (default: the newest release live before the current one)",
          parameters: [toolParam],
          requestBody: json({ type: "object", properties: { release_id: { type: "string" } } }),
          responses: { "202": ok("Release"), "404": error, "409": error },
        },
      },
      "/api/v1/tools/{tool}/webservice": {
        get: {
          summary:
            "Webservice status: state (running, stopped, missing, none), live release, commit, image digest, address, replicas wanted and ready, each local replica with its address, started at",
          parameters: [toolParam],
          responses: { "200": { description: "status" } },
        },
      },
      "/api/v1/tools/{tool}/webservice/logs": {
        get: {
          summary:
            "Kept webservice output of a release (default: the live one; last 5 releases, 2000 lines each); follow=true streams text until the client goes",
          parameters: [
            toolParam,
            { name: "release", in: "query", schema: { type: "string" } },
            { name: "tail", in: "query", schema: { type: "integer", minimum: 1, maximum: 2000 } },
            { name: "follow", in: "query", schema: { type: "boolean" } },
          ],
          responses: { "200": { description: "log lines" }, "404": error },
        },
      },
      "/api/v1/tools/{tool}/webservice/restart": {
        post: {
          summary: "Restart the webservice as a new release of the live one's image (trigger kind restart)",
          parameters: [toolParam],
          responses: { "202": { description: "release_id of the new release" }, "409": error },
        },
      },
      "/api/v1/tools/{tool}/webservice/stop": {
        post: {
          summary:
            "Stop the webservice: route removed (the proxy answers 503), process stopped, stays stopped",
          parameters: [toolParam],
          responses: { "200": { description: "status" }, "409": error },
        },
      },
      "/api/v1/tools/{tool}/webservice/start": {
        post: {
          summary: "Start a stopped webservice: the last live release deployed again as a new release",
          parameters: [toolParam],
          responses: { "202": { description: "release_id of the new release" }, "404": error, "409": error },
        },
      },
      "/api/v1/tools/{tool}/builds/{id}": {
        get: {
          summary: "Show a build",
          parameters: [toolParam, idParam],
          responses: { "200": ok("Build"), "404": error },
        },
      },
      "/api/v1/tools/{tool}/builds/{id}/cancel": {
        post: {
          summary: "Cancel a build",
          parameters: [toolParam, idParam],
          responses: { "200": ok("Build"), "409": error },
        },
      },
      "/api/v1/tools/{tool}/builds/{id}/logs": {
        get: {
          summary: "Build log; with follow=true, streamed as text until the build ends",
          parameters: [toolParam, idParam, { name: "follow", in: "query", schema: { type: "boolean" } }],
          responses: { "200": { description: "log lines" } },
        },
      },
      "/api/v1/tools/{tool}/deployments": {
        get: {
          summary: "List releases, newest first",
          parameters: [toolParam],
          responses: { "200": ok("Release", true) },
        },
      },
      "/api/v1/tools/{tool}/registry/rotate-pull-credentials": {
        post: {
          summary:
            "New registry pull credential for the tool (Harbor robot secret refreshed), then a restart release that applies it",
          parameters: [toolParam],
          responses: { "202": { description: "{tool, registry, username, release_id}" }, "400": error },
        },
      },
      "/api/v1/tools/{tool}/manifests": {
        get: {
          summary:
            "Kubernetes objects of the tool's live (else newest) release, for review; Secret values are shown as ***",
          parameters: [toolParam, { name: "component", in: "query", schema: { type: "string" } }],
          responses: {
            "200": {
              description:
                "{tool, namespace, release_id, release_status, live, commit, config_source, components, skipped, limit_problems, options, objects}; limit_problems: what the namespace's limits would refuse, each line saying what to change",
            },
            "404": error,
          },
        },
      },
      "/api/v1/tools/{tool}/deployments/{id}": {
        get: {
          summary: "Show a release",
          parameters: [toolParam, idParam],
          responses: { "200": ok("Release") },
        },
      },
      "/api/v1/tools/{tool}/envvars": {
        get: {
          summary: "List the tool's environment variables by name; values only with show_values=true",
          parameters: [toolParam, { name: "show_values", in: "query", schema: { type: "boolean" } }],
          responses: { "200": ok("EnvVar", true), "403": error, "404": error },
        },
      },
      "/api/v1/tools/{tool}/envvars/{name}": {
        get: {
          summary: "Show one environment variable with its value",
          parameters: [toolParam, envNameParam],
          responses: { "200": ok("EnvVar"), "403": error, "404": error },
        },
        put: {
          summary:
            "Create or replace an environment variable (stored encrypted); restarts the tool as a new release of the running image",
          parameters: [toolParam, envNameParam],
          requestBody: json({
            type: "object",
            required: ["value"],
            properties: { value: { type: "string" } },
          }),
          responses: {
            "201": ok("EnvVarChange"),
            "200": ok("EnvVarChange"),
            "400": error,
            "403": error,
            "404": error,
            "409": error,
          },
        },
        delete: {
          summary: "Delete an environment variable; restarts the tool as a new release of the running image",
          parameters: [toolParam, envNameParam],
          responses: { "200": ok("EnvVarChange"), "403": error, "404": error },
        },
      },
      "/api/v1/tools/{tool}/jobs": {
        get: {
          summary:
            "List the tool's jobs with their status, in pages; with dump=true, the API-defined jobs as a Toolforge jobs.yaml (not paged)",
          parameters: [
            toolParam,
            { name: "dump", in: "query", schema: { type: "boolean" } },
            ...pageParams(JOB_PAGES),
          ],
          responses: { "200": page("Job"), "400": error, "404": error },
        },
        post: {
          summary:
            "Define a job (one-off unless schedule or continuous; a one-off starts a run), or, with only a name, run an existing job now",
          parameters: [toolParam],
          requestBody: json({ $ref: "#/components/schemas/JobInput" }),
          responses: { "201": ok("Job"), "400": error, "404": error, "409": error },
        },
        put: {
          summary:
            "Load a jobs.yaml: the API-defined jobs become exactly these; unchanged jobs keep running (Toolforge `jobs load`)",
          parameters: [toolParam],
          requestBody: json({
            type: "object",
            required: ["jobs"],
            properties: { jobs: { type: "array", items: { $ref: "#/components/schemas/JobInput" } } },
          }),
          responses: { "200": ok("JobsLoadResult"), "400": error, "409": error },
        },
      },
      "/api/v1/tools/{tool}/jobs/{name}": {
        get: {
          summary:
            "Show a job: definition, status (state, restarts, last exit code, next run) and its kept runs",
          parameters: [toolParam, jobNameParam],
          responses: { "200": ok("Job"), "404": error },
        },
        delete: {
          summary: "Stop the job and remove it with its runs and logs",
          parameters: [toolParam, jobNameParam],
          responses: { "200": { description: "Deleted" }, "404": error },
        },
      },
      "/api/v1/tools/{tool}/jobs/{name}/restart": {
        post: {
          summary: "Replace a continuous job's process; run any other job again now",
          parameters: [toolParam, jobNameParam],
          responses: { "200": { description: "Restarting" }, "404": error, "409": error },
        },
      },
      "/api/v1/tools/{tool}/jobs/{name}/runs/{run}": {
        get: {
          summary:
            "A requested run and its retries with their output; wait=S (at most 60) waits until they are over",
          parameters: [
            toolParam,
            jobNameParam,
            { name: "run", in: "path", required: true, schema: { type: "string" } },
            { name: "wait", in: "query", schema: { type: "integer", minimum: 0, maximum: 60 } },
          ],
          responses: { "200": ok("JobRunWait"), "404": error },
        },
      },
      "/api/v1/tools/{tool}/jobs/{name}/logs": {
        get: {
          summary:
            "Output of the kept runs (last 20, 1000 lines each), readable after the processes are gone; follow=true streams text",
          parameters: [
            toolParam,
            jobNameParam,
            { name: "run", in: "query", schema: { type: "string" } },
            { name: "follow", in: "query", schema: { type: "boolean" } },
          ],
          responses: {
            "200": {
              description: "JSON {job, runs: [JobRun & {lines}]}, or text/plain when following",
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    properties: {
                      job: { type: "string" },
                      runs: { type: "array", items: { $ref: "#/components/schemas/JobRun" } },
                    },
                  },
                },
                "text/plain": { schema: { type: "string" } },
              },
            },
            "404": error,
          },
        },
      },
      "/hooks/gitlab/{tool}": {
        post: {
          summary: "GitLab Push Hook / Tag Push Hook; X-Gitlab-Token is the tool's webhook secret",
          security: [],
          parameters: [toolParam],
          responses: {
            "202": ok("TriggerResult"),
            "200": ok("TriggerResult"),
            "400": error,
            "401": error,
            "413": error,
          },
        },
      },
      "/hooks/redeploy/{tool}": {
        post: {
          summary: "Rebuild and redeploy the tool's configured ref",
          security: [],
          parameters: [toolParam, { name: "token", in: "query", required: true, schema: { type: "string" } }],
          responses: { "202": ok("TriggerResult"), "200": ok("TriggerResult"), "401": error },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      responses: {
        Error: {
          description: "Error",
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: {
                  error: {
                    type: "object",
                    required: ["code", "message"],
                    properties: { code: { type: "string" }, message: { type: "string" } },
                  },
                },
              },
            },
          },
        },
      },
      schemas: {
        Tool: { type: "object", properties: { name: { type: "string" }, git_url: { type: "string" } } },
        CreatedTool: {
          type: "object",
          required: ["name", "token", "git_url", "webhook_url", "webhook_secret", "redeploy_url"],
          properties: Object.fromEntries(
            ["name", "token", "git_url", "webhook_url", "webhook_secret", "redeploy_url", "web_url"].map(
              (k) => [k, { type: "string" }],
            ),
          ),
        },
        Build: {
          type: "object",
          required: ["id", "status", "commit", "image", "image_digest"],
          properties: {
            id: { type: "string" },
            status: {
              enum: ["pending", "running", "deploying", "success", "failure", "cancelled", "superseded"],
            },
            reason: { type: ["string", "null"] },
            phase: { type: ["string", "null"] },
            buildpack: { type: ["string", "null"] },
            commit: { type: "string" },
            image: { type: ["string", "null"] },
            image_digest: { type: ["string", "null"] },
            log_tail: { type: "array", items: { type: "string" } },
          },
        },
        Release: {
          type: "object",
          properties: {
            id: { type: "string" },
            commit: { type: "string" },
            image_digest: { type: "string" },
            status: { enum: ["deploying", "live", "failed", "superseded"] },
            live: { type: "boolean" },
            image_deleted: { type: "boolean" },
            trigger: { type: "object" },
            rollback_of: { type: ["string", "null"] },
            restart_of: { type: ["string", "null"] },
            reason: { type: ["string", "null"] },
            last_probe: { type: ["string", "null"] },
            log_tail: { type: "array", items: { type: "string" } },
          },
        },
        GitlabLink: {
          type: "object",
          properties: {
            gitlab_url: { type: "string" },
            project_id: { type: "integer" },
            project_path: { type: "string" },
            web_url: { type: "string" },
            git_url: { type: "string" },
            default_branch: { type: ["string", "null"] },
            hook_id: { type: "integer" },
            deploy_token_id: { type: "integer" },
            deploy_token_username: { type: "string" },
            linked_at: { type: "string" },
          },
        },
        EnvVar: {
          type: "object",
          required: ["name", "value"],
          properties: { name: { type: "string" }, value: { type: ["string", "null"] } },
        },
        EnvVarChange: {
          type: "object",
          required: ["name", "release_id", "message"],
          properties: {
            name: { type: "string" },
            created: { type: "boolean" },
            release_id: { type: ["string", "null"], description: "the release restarting the tool" },
            message: { type: "string" },
          },
        },
        JobInput: {
          type: "object",
          required: ["name"],
          description:
            "One item of Toolforge's jobs.yaml. image: a release id pins it; a Toolforge name (python3.11) means the live release's image",
          properties: {
            name: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 52 },
            command: { type: "string" },
            image: { type: "string" },
            schedule: {
              type: "string",
              description: "5 cron fields (UTC) or @hourly/@daily/@weekly/@monthly/@yearly",
            },
            continuous: { type: "boolean" },
            retry: { type: "integer", minimum: 0, maximum: 5 },
            timeout: { type: "integer", minimum: 1, description: "seconds" },
            mem: { type: "string", examples: ["512Mi"] },
          },
          additionalProperties: { description: "Toolforge keys kept for dump: cpu, emails, mount, filelog…" },
        },
        Job: {
          type: "object",
          properties: {
            name: { type: "string" },
            type: { enum: ["continuous", "scheduled", "one-off"] },
            command: { type: "string" },
            image: { type: ["string", "null"] },
            image_ref: { type: "string" },
            release_id: { type: "string" },
            schedule: { type: ["string", "null"] },
            schedule_expanded: { type: ["string", "null"] },
            retry: { type: "integer" },
            timeout: { type: ["integer", "null"] },
            mem: { type: ["string", "null"] },
            source: { enum: ["config", "api"] },
            revision: { type: "integer" },
            run_id: { type: ["string", "null"] },
            status: {
              type: "object",
              properties: {
                state: {
                  enum: [
                    "pending",
                    "running",
                    "restarting",
                    "waiting",
                    "succeeded",
                    "failed",
                    "defined",
                    "stopped",
                  ],
                },
                restarts: { type: "integer" },
                last_exit_code: { type: ["integer", "null"] },
                last_run_id: { type: ["string", "null"] },
                last_started_at: { type: ["string", "null"] },
                last_finished_at: { type: ["string", "null"] },
                next_run_at: { type: ["string", "null"] },
                message: { type: ["string", "null"] },
              },
            },
            runs: { type: "array", items: { $ref: "#/components/schemas/JobRun" } },
          },
        },
        JobRun: {
          type: "object",
          properties: {
            id: { type: "string" },
            request_id: { type: "string" },
            trigger: { enum: ["schedule", "manual", "continuous", "retry"] },
            attempt: { type: "integer" },
            status: { enum: ["running", "succeeded", "failed", "timeout", "skipped", "stopped", "lost"] },
            exit_code: { type: ["integer", "null"] },
            reason: { type: ["string", "null"] },
            started_at: { type: "string" },
            finished_at: { type: ["string", "null"] },
            lines: { type: "array", items: { type: "string" } },
          },
        },
        JobRunWait: {
          type: "object",
          properties: {
            final: { type: "boolean" },
            exit_code: { type: ["integer", "null"] },
            status: { type: "string" },
            runs: { type: "array", items: { $ref: "#/components/schemas/JobRun" } },
          },
        },
        JobsLoadResult: {
          type: "object",
          properties: Object.fromEntries(
            ["created", "updated", "deleted", "unchanged"].map((k) => [
              k,
              { type: "array", items: { type: "string" } },
            ]),
          ),
        },
        TriggerResult: {
          type: "object",
          required: ["status", "reason"],
          properties: {
            status: { enum: ["queued", "duplicate", "ignored"] },
            build_id: { type: "string" },
            commit: { type: "string" },
            reason: { type: "string" },
          },
        },
      },
    },
  };
}

function ok(schema: string, list = false) {
  const ref = { $ref: `#/components/schemas/${schema}` };
  return {
    description: "OK",
    content: { "application/json": { schema: list ? { type: "array", items: ref } : ref } },
  };
}

/** `?limit=&cursor=` of a paged list. */
function pageParams(limits: PageLimits) {
  return [
    {
      name: "limit",
      in: "query",
      description: `items per page (default ${limits.defaultLimit})`,
      schema: { type: "integer", minimum: 1, maximum: limits.maxLimit, default: limits.defaultLimit },
    },
    {
      name: "cursor",
      in: "query",
      description: 'where the page starts: take it from the previous page\'s Link: <…>; rel="next" header',
      schema: { type: "string" },
    },
  ];
}

/** One page of a list, with the Link to the next page while there is one. */
function page(schema: string) {
  return {
    ...ok(schema, true),
    headers: {
      Link: {
        description: 'the next page, `<path?limit=…&cursor=…>; rel="next"`; absent on the last page',
        schema: { type: "string" },
      },
    },
  };
}

function json(schema: object) {
  return { content: { "application/json": { schema } } };
}
