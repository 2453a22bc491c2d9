import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import type { Release } from "../services/domain/releases/release.js";
import type { RunningServer } from "../services/roles/server/server.js";
import { GitlabDouble, gitlabPushBuild, PUSH_HOOK } from "./helpers/gitlab-double.js";
import { capturedLogger, clientOf, startLocalServer } from "./helpers/local-server.js";
import { startRedis } from "./helpers/redis.js";

/**
 * GitLab linking and commit statuses through the product: `startServer` (API role) with its real Redis,
 * the CLI from dist/ (`npm run build` first), and the GitLab API double standing in for GitLab.
 */
const MAINTAINER = "glpat-maintainer-linktest-0123456789";
const WRONG = "glpat-wrong-linktest-0123456789";
const PROJECT_ID = 42;
const PROJECT_PATH = "tools/web-app";
const OTHER_ID = 43;
const OTHER_PATH = "tools/elsewhere";
const serverLog = capturedLogger("debug");

let home: string;
let redis: Awaited<ReturnType<typeof startRedis>>;
let raw: Redis;
let store: RedisStore;
let gitlab: GitlabDouble;
let server: RunningServer;
let tool: { name: string; token: string; webhook_secret: string };
let other: { name: string; token: string; webhook_secret: string };
/** Every credential the test handed out or GitLab created: none may show up in output, logs or Redis. */
const credentials: string[] = [MAINTAINER, WRONG];

const client = clientOf(() => server);
const cli = (args: string[], token = tool.token) => client.cli(args, { token });
const api = (route: string, init: RequestInit = {}, token?: string) =>
  client.request<Record<string, unknown>>(route, init, token);

function hook(secret: string, sha: string, url = `/hooks/gitlab/${tool.name}`) {
  return fetch(`${server.url}${url}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-gitlab-event": "Push Hook", "x-gitlab-token": secret },
    body: JSON.stringify({ ...PUSH_HOOK, checkout_sha: sha, after: sha }),
  });
}

function expectNoCredential(text: string) {
  for (const c of credentials) expect(text).not.toContain(c);
}

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "slipway-gitlab-link-"));
  redis = await startRedis();
  raw = new Redis(redis.url);
  store = RedisStore.create(redis.url);
  gitlab = await GitlabDouble.start();
  gitlab.addProject({ id: PROJECT_ID, path: PROJECT_PATH });
  gitlab.addProject({ id: OTHER_ID, path: OTHER_PATH });
  gitlab.addToken(MAINTAINER, { role: "maintainer" });
  ({ server } = await startLocalServer({
    home,
    env: {
      REDIS_URL: redis.url,
      SLIPWAY_LOG_LEVEL: "debug",
      SLIPWAY_SOURCE_ALLOW_HOSTS: new URL(gitlab.url).host,
    },
    logger: serverLog.logger,
    role: "api",
    ready: false,
  }));
  const created = async (name: string) =>
    (await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name }) })).body as typeof tool;
  tool = await created("web-app");
  other = await created("other-tool");
  credentials.push(tool.token, tool.webhook_secret, other.token);
});

afterAll(async () => {
  await server?.close();
  await gitlab?.close();
  await store?.close();
  await raw?.quit();
  await redis?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("linking a tool to GitLab", () => {
  it("refuses a wrong access token with what to fix, and changes nothing", async () => {
    const res = await api(
      `/api/v1/tools/${tool.name}/gitlab`,
      { method: "POST", body: JSON.stringify({ url: gitlab.url, project: PROJECT_PATH, token: WRONG }) },
      tool.token,
    );
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: { code: "invalid_input" } });
    expect(JSON.stringify(res.body)).toMatch(/rejected the access token \(401\)/);
    expect(gitlab.hooks(PROJECT_ID)).toEqual([]);
    // The webhook secret was not rotated by the failed link.
    expect((await hook(tool.webhook_secret, "1".repeat(40))).status).toBe(202);
    expectNoCredential(JSON.stringify(res.body));
  });

  it("lets only the tool's own token (or the admin) link it", async () => {
    const res = await api(
      `/api/v1/tools/${tool.name}/gitlab`,
      { method: "POST", body: JSON.stringify({ url: gitlab.url, project: PROJECT_PATH, token: MAINTAINER }) },
      other.token,
    );
    expect(res.status).toBe(403);
    expect(gitlab.hooks(PROJECT_ID)).toEqual([]);
  });

  it("links with `tools link-gitlab`: push+tag hook with a new secret, read_repository deploy token", async () => {
    const out = await cli([
      "tools",
      "link-gitlab",
      tool.name,
      "--url",
      gitlab.url,
      "--project",
      PROJECT_PATH,
      "--token",
      MAINTAINER,
      "--json",
    ]);
    expect(out.code, out.stderr).toBe(0);
    const link = JSON.parse(out.stdout) as Record<string, unknown>;
    expect(link).toMatchObject({
      project_id: PROJECT_ID,
      project_path: PROJECT_PATH,
      gitlab_url: gitlab.url,
    });

    const hooks = gitlab.hooks(PROJECT_ID);
    expect(hooks).toHaveLength(1);
    const registered = hooks[0]!;
    expect(link.hook_id).toBe(registered.id);
    expect(registered.url).toBe(`${server.url}/hooks/gitlab/${tool.name}`);
    expect(registered).toMatchObject({
      push_events: true,
      tag_push_events: true,
      merge_requests_events: false,
      issues_events: false,
      enable_ssl_verification: true,
    });
    expect(registered.token).toBeTruthy();
    expect(registered.token).not.toBe(tool.webhook_secret);
    credentials.push(registered.token!);

    const tokens = gitlab.deployTokens(PROJECT_ID).filter((t) => !t.revoked);
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toMatchObject({ name: `slipway-${tool.name}`, scopes: ["read_repository"] });
    expect(link).toMatchObject({
      deploy_token_id: tokens[0]!.id,
      deploy_token_username: tokens[0]!.username,
    });
    credentials.push(tokens[0]!.token);
    expectNoCredential(out.stdout + out.stderr);
  });

  it("rotated the webhook secret: the old one is refused, the one GitLab holds is accepted", async () => {
    const secret = gitlab.hooks(PROJECT_ID)[0]!.token!;
    expect((await hook(tool.webhook_secret, "2".repeat(40))).status).toBe(401);
    expect((await hook(tool.webhook_secret, "2".repeat(40), "/hooks/gitlab")).status).toBe(401);
    expect((await hook(secret, "3".repeat(40))).status).toBe(202);
    // Without the tool in the URL the secret alone names the tool.
    expect((await hook(secret, "4".repeat(40), "/hooks/gitlab")).status).toBe(202);
  });

  it("refuses `tools rotate webhook-secret` for a linked tool, which would leave GitLab's hook behind", async () => {
    const secret = gitlab.hooks(PROJECT_ID)[0]!.token!;
    const out = await cli(["tools", "rotate", tool.name, "webhook-secret"]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain(`slipway tools link-gitlab ${tool.name}`);
    expect((await hook(secret, "5".repeat(40))).status).toBe(202);
  });

  it("stores both credentials encrypted, with the key file readable by its owner only", async () => {
    const value = await raw.get(`slipway:forge-link:${tool.name}`);
    expect(value).not.toBeNull();
    expectNoCredential(value!);
    expect(value).toMatch(/"access_token_box":"v1:/);
    expect(value).toMatch(/"deploy_token_box":"v1:/);
    expect((await stat(path.join(home, "encryption-key"))).mode & 0o777).toBe(0o600);
  });

  it("shows the link in `tools show` and the API, without any token", async () => {
    const out = await cli(["tools", "show", tool.name, "--json"]);
    expect(out.code, out.stderr).toBe(0);
    const shown = JSON.parse(out.stdout) as { gitlab: Record<string, unknown> };
    expect(shown.gitlab).toMatchObject({
      gitlab_url: gitlab.url,
      project_id: PROJECT_ID,
      project_path: PROJECT_PATH,
      hook_id: gitlab.hooks(PROJECT_ID)[0]!.id,
    });
    const viaApi = await api(`/api/v1/tools/${tool.name}/gitlab`, {}, tool.token);
    expect(viaApi.body.gitlab).toEqual(shown.gitlab);
    expectNoCredential(out.stdout + JSON.stringify(viaApi.body));
    const unlinked = await api(`/api/v1/tools/${other.name}`);
    expect(unlinked.body.gitlab).toBeNull();
  });
});

describe("commit statuses of a linked tool's builds", () => {
  let n = 0;
  const sha = () => (++n).toString(16).padStart(2, "0").repeat(20);

  async function newBuild(commit: string, toolName = tool.name, over: Partial<Build> = {}): Promise<Build> {
    const build = gitlabPushBuild({
      id: `b${commit.slice(0, 8)}${Math.random().toString(36).slice(2, 6)}`,
      tool: toolName,
      commit,
      source_url: `${gitlab.url}/${PROJECT_PATH}.git`,
      ...over,
    });
    await store.createBuild(build);
    return build;
  }

  async function release(build: Build): Promise<Release> {
    const r: Release = {
      id: `r${build.id}`,
      tool: build.tool,
      component: build.component,
      build_id: build.id,
      commit: build.commit,
      image: "img",
      image_digest: `sha256:${"0".repeat(64)}`,
      trigger: build.trigger,
      status: "deploying",
      created_at: new Date().toISOString(),
    };
    await store.createRelease(r);
    return r;
  }

  const posted = (commit: string) => gitlab.postedStates(PROJECT_ID, commit);
  const settled = (commit: string, state: string) => gitlab.settled(PROJECT_ID, commit, state);

  it("posts pending, running, then success when the release is live, linking the build log", async () => {
    const commit = sha();
    const build = await newBuild(commit);
    await settled(commit, "pending");
    await store.updateBuild(build.id, { status: "running", started_at: new Date().toISOString() });
    await settled(commit, "running");
    await store.updateBuild(build.id, { status: "deploying", reason: "built; deploying" });
    const r = await release(build);
    await store.updateRelease(r.id, { status: "live" });
    const done = await settled(commit, "success");

    expect(posted(commit)).toEqual(["pending", "running", "success"]);
    expect(done).toMatchObject({
      name: "slipway/web",
      ref: "main",
      target_url: `${server.url}/api/v1/builds/${build.id}/logs`,
    });
    expect(gitlab.statuses(PROJECT_ID, commit)).toHaveLength(1);
  });

  it("posts failed with the reason when the build fails, and a repeated state posts nothing", async () => {
    const commit = sha();
    const build = await newBuild(commit);
    await store.updateBuild(build.id, { status: "running" });
    await store.updateBuild(build.id, { status: "running", phase: "build" });
    // A retried build goes back to pending after running: GitLab cannot go back, nothing is posted.
    await store.updateBuild(build.id, { status: "pending", reason: "retrying: registry unreachable" });
    await store.updateBuild(build.id, { status: "running" });
    const reason = `build failed in heroku/nodejs: npm ci exited 1 ${"x".repeat(400)}`;
    await store.updateBuild(build.id, { status: "failure", reason });
    const failed = await settled(commit, "failed");
    expect(posted(commit)).toEqual(["pending", "running", "failed"]);
    expect(failed.description).toMatch(/^build failed in heroku\/nodejs: npm ci exited 1/);
    expect(Array.from(failed.description!).length).toBeLessThanOrEqual(255);
  });

  it("posts canceled for a cancelled build and for a superseded one", async () => {
    const a = sha();
    const cancelled = await newBuild(a);
    await store.updateBuild(cancelled.id, { status: "running" });
    await store.updateBuild(cancelled.id, { status: "cancelled", reason: "cancelled by request" });
    expect((await settled(a, "canceled")).description).toBe("cancelled by request");
    expect(posted(a)).toEqual(["pending", "running", "canceled"]);

    const b = sha();
    const superseded = await newBuild(b);
    await store.updateBuild(superseded.id, { status: "superseded", reason: "superseded by build x" });
    await settled(b, "canceled");
    expect(posted(b)).toEqual(["pending", "canceled"]);
  });

  it("posts failed when the build succeeded but its release failed to deploy", async () => {
    const commit = sha();
    const build = await newBuild(commit);
    await store.updateBuild(build.id, { status: "running" });
    await store.updateBuild(build.id, { status: "deploying" });
    const r = await release(build);
    await store.updateRelease(r.id, { status: "failed", reason: "web process exited before it answered" });
    const failed = await settled(commit, "failed");
    expect(failed.description).toBe("deploy failed: web process exited before it answered");
    expect(posted(commit)).toEqual(["pending", "running", "failed"]);
  });

  it("retries while GitLab answers 500, without holding up the build's states", async () => {
    const commit = sha();
    gitlab.failNext(2, { kind: "status", status: 500 });
    const build = await newBuild(commit);
    await store.updateBuild(build.id, { status: "running" });
    await settled(commit, "running");
    // Two 500s were retried (the double does not record faulted requests; the log does), then pending
    // and running arrived in that order.
    const retries = serverLog
      .text()
      .split("\n")
      .filter((l) => l.includes(commit) && l.includes("gitlab commit status failed, retrying"));
    expect(retries).toHaveLength(2);
    expect(retries[0]).toMatch(/"status":500/);
    expect(posted(commit)).toEqual(["pending", "running"]);
    expect(gitlab.statuses(PROJECT_ID, commit).map((s) => s.status)).toEqual(["running"]);
    expect((await store.getBuild(build.id))?.status).toBe("running");
  }, 60_000);

  it("posts nothing for a tool that is not linked, nor for a push to Slipway's own git remote", async () => {
    const commit = sha();
    const before = gitlab.requests.length;
    const build = await newBuild(commit, other.name);
    await store.updateBuild(build.id, { status: "running" });
    await store.updateBuild(build.id, { status: "failure", reason: "x" });
    const own = await newBuild(sha(), tool.name, {
      source_url: `${server.url}/git/${tool.name}.git`,
      trigger: { kind: "git_push", ref: "refs/heads/main" },
    });
    await store.updateBuild(own.id, { status: "running" });
    // A linked tool's status posted afterwards proves the earlier events were handled.
    const marker = sha();
    await newBuild(marker);
    await settled(marker, "pending");
    expect(gitlab.requests.slice(before).map((r) => r.path)).toEqual([
      `/api/v4/projects/${PROJECT_ID}/statuses/${marker}`,
    ]);
  });
});

describe("relinking and unlinking", () => {
  it("relinking the same project keeps one hook and revokes the previous deploy token", async () => {
    const before = gitlab.deployTokens(PROJECT_ID).filter((t) => !t.revoked);
    const res = await api(
      `/api/v1/tools/${tool.name}/gitlab`,
      { method: "POST", body: JSON.stringify({ url: gitlab.url, project: PROJECT_ID, token: MAINTAINER }) },
      tool.token,
    );
    expect(res.status).toBe(201);
    expectNoCredential(JSON.stringify(res.body));
    expect(gitlab.hooks(PROJECT_ID)).toHaveLength(1);
    const live = gitlab.deployTokens(PROJECT_ID).filter((t) => !t.revoked);
    expect(live).toHaveLength(1);
    expect(live[0]!.id).not.toBe(before[0]!.id);
    credentials.push(live[0]!.token, gitlab.hooks(PROJECT_ID)[0]!.token!);
  });

  it("unlinks with `tools unlink-gitlab`: hook removed, deploy token revoked, link forgotten; twice is fine", async () => {
    // The hook was already deleted by hand in GitLab: its 404 counts as removed.
    const hookId = gitlab.hooks(PROJECT_ID)[0]!.id;
    const manual = await fetch(`${gitlab.url}/api/v4/projects/${PROJECT_ID}/hooks/${hookId}`, {
      method: "DELETE",
      headers: { "private-token": MAINTAINER },
    });
    expect(manual.status).toBe(204);

    const out = await cli(["tools", "unlink-gitlab", tool.name, "--json"]);
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ unlinked: true, gitlab: { project_id: PROJECT_ID } });
    expect(gitlab.hooks(PROJECT_ID)).toEqual([]);
    expect(gitlab.deployTokens(PROJECT_ID).filter((t) => !t.revoked)).toEqual([]);
    expect(await raw.get(`slipway:forge-link:${tool.name}`)).toBeNull();
    expect((await api(`/api/v1/tools/${tool.name}`)).body.gitlab).toBeNull();

    const again = await cli(["tools", "unlink-gitlab", tool.name]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("was not linked");
  });

  it("never wrote a credential to the server log", () => {
    expect(serverLog.text()).toContain("gitlab project linked");
    expectNoCredential(serverLog.text());
  });
});
