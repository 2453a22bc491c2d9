import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../services/roles/server/server.js";
import { git, gitRepo } from "../helpers/apps.js";
import { buildIdFrom, clientOf, startLocalServer } from "../helpers/local-server.js";

/**
 * A hostile tool owner holds every credential of their own tool (token, webhook secret, redeploy token)
 * and tries each of them on another tool: every route of the API (read from the OpenAPI document, so a
 * route added later is tried too), the git remote, the webhooks. Nothing of the victim may be read or
 * changed. An API-only server: the victim's build stays queued, so a cancel that got through would show.
 */
interface CreatedTool {
  name: string;
  token: string;
  git_url: string;
  webhook_secret: string;
  redeploy_url: string;
}

let server: RunningServer;
let home: string;
const { api, request } = clientOf(() => server);
let victim: CreatedTool;
let attacker: CreatedTool;
let victimBuild: string;
const VICTIM_FILE = "victim-only-content-5b1e";

beforeAll(async () => {
  ({ server, home } = await startLocalServer({ name: "cross-tool", role: "api", ready: false }));
  const create = (name: string) =>
    api<CreatedTool>("/api/v1/tools", { method: "POST", body: JSON.stringify({ name }) });
  victim = await create("victim-tool");
  attacker = await create("attacker-tool");
  await api(`/api/v1/tools/${victim.name}/envvars/SECRET_NAME`, {
    method: "PUT",
    body: JSON.stringify({ value: "victim-env-value" }),
  });
  const repo = await gitRepo({ "index.html": VICTIM_FILE });
  const pushed = await git(repo.dir, ["push", withToken(victim.git_url, victim.token), "main"]);
  victimBuild = buildIdFrom(pushed);
}, 300_000);

afterAll(async () => {
  await server?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

function withToken(url: string, token: string): string {
  return url.replace("://", `://user:${token}@`);
}

describe("one tool's credentials on another tool", () => {
  it("every route of the victim answers 401, 403 or 404 to the attacker's token, and nothing changes", async () => {
    const doc = await api<{ paths: Record<string, Record<string, unknown>> }>("/api/v1/openapi.json");
    const tried: string[] = [];
    for (const [template, operations] of Object.entries(doc.paths)) {
      // Only routes that name a tool or a build: the rest (list, create) are checked below.
      if (!template.includes("{tool}") && !template.includes("{id}")) continue;
      const route = template
        .replace("{tool}", victim.name)
        .replace("{id}", victimBuild)
        .replace("{name}", "SECRET_NAME")
        .replace("{run}", "1");
      for (const method of Object.keys(operations)) {
        const res = await request(
          route,
          {
            method: method.toUpperCase(),
            body: method === "get" ? undefined : JSON.stringify({ value: "x" }),
          },
          attacker.token,
        );
        tried.push(`${method.toUpperCase()} ${route} ${res.status}`);
        expect([401, 403, 404], `${method.toUpperCase()} ${route}: ${JSON.stringify(res.body)}`).toContain(
          res.status,
        );
        expect(JSON.stringify(res.body)).not.toContain("victim-env-value");
      }
    }
    // The document really lists the tool routes: builds, envvars, jobs, webservice, rollback, gitlab.
    expect(tried.length).toBeGreaterThan(30);
    const build = await api<{ status: string }>(`/api/v1/builds/${victimBuild}`);
    expect(build.status).toBe("pending");
    const env = await api<{ name: string; value?: string }[]>(
      `/api/v1/tools/${victim.name}/envvars?show_values=true`,
    );
    expect(JSON.stringify(env)).toContain("victim-env-value");
  });

  it("lists show the attacker only its own tool and builds", async () => {
    const tools = await api<{ name: string }[]>("/api/v1/tools", {}, attacker.token);
    expect(tools.map((t) => t.name)).toEqual([attacker.name]);
    const builds = await request<unknown>("/api/v1/builds", {}, attacker.token);
    expect(JSON.stringify(builds.body)).not.toContain(victimBuild);
    const create = await request(
      "/api/v1/tools",
      { method: "POST", body: '{"name":"x-tool"}' },
      attacker.token,
    );
    expect(create.status).toBe(403);
  });

  it("the victim's git remote refuses the attacker's token for fetch and push", async () => {
    const repo = await gitRepo({ "index.html": "overwritten" });
    const fetched = await git(repo.dir, ["fetch", withToken(victim.git_url, attacker.token), "main"]).catch(
      (e: unknown) => String(e),
    );
    expect(fetched).toMatch(/Authentication failed|403|401/);
    expect(fetched).not.toContain(VICTIM_FILE);
    const pushed = await git(repo.dir, [
      "push",
      withToken(victim.git_url, attacker.token),
      "main:main",
    ]).catch((e: unknown) => String(e));
    expect(pushed).toMatch(/Authentication failed|403|401/);
    const builds = await api<{ id: string }[]>(`/api/v1/tools/${victim.name}/builds`);
    expect(builds.map((b) => b.id)).toEqual([victimBuild]);
  });

  it("the victim's webhooks refuse the attacker's webhook secret and redeploy token", async () => {
    const hook = await fetch(`${server.url}/hooks/gitlab/${victim.name}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": "Push Hook",
        "x-gitlab-token": attacker.webhook_secret,
      },
      body: JSON.stringify({ object_kind: "push", ref: "refs/heads/main", after: "a".repeat(40) }),
    });
    expect(hook.status).toBe(401);
    const redeployToken = new URL(attacker.redeploy_url).searchParams.get("token")!;
    const redeploy = await fetch(`${server.url}/hooks/redeploy/${victim.name}?token=${redeployToken}`, {
      method: "POST",
    });
    expect(redeploy.status).toBe(401);
    const builds = await api<{ id: string }[]>(`/api/v1/tools/${victim.name}/builds`);
    expect(builds.map((b) => b.id)).toEqual([victimBuild]);
  });
});
