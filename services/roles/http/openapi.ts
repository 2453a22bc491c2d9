/**
 * The OpenAPI 3.1 document served at /api/v1/openapi.json. Kept by hand beside the router; the API test
 * checks that every route the router answers is described here.
 */
export function openApiDocument(publicUrl: string) {
  const error = { $ref: "#/components/responses/Error" };
  const toolParam = { name: "tool", in: "path", required: true, schema: { type: "string" } };
  const idParam = { name: "id", in: "path", required: true, schema: { type: "string" } };
  return {
    openapi: "3.1.0",
    info: { title: "Slipway API", version: "1" },
    servers: [{ url: publicUrl }],
    security: [{ bearer: [] }],
    paths: {
      "/api/v1/tools": {
        get: {
          summary: "List tools visible to the token",
          responses: { "200": ok("Tool", true), "401": error },
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
      },
      "/api/v1/tools/{tool}/builds": {
        get: {
          summary: "List builds, newest first",
          parameters: [toolParam],
          responses: { "200": ok("Build", true) },
        },
        post: {
          summary: "Start a build of the tool's ref (or another ref)",
          parameters: [toolParam],
          requestBody: json({
            type: "object",
            properties: {
              ref: { type: "string" },
              force: { type: "boolean" },
              no_cache: { type: "boolean" },
            },
          }),
          responses: { "202": ok("TriggerResult"), "200": ok("TriggerResult"), "409": error },
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
      "/api/v1/tools/{tool}/deployments/{id}": {
        get: {
          summary: "Show a release",
          parameters: [toolParam, idParam],
          responses: { "200": ok("Release") },
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
            status: { enum: ["pending", "running", "success", "failure", "cancelled", "superseded"] },
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
          },
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

function json(schema: object) {
  return { content: { "application/json": { schema } } };
}
