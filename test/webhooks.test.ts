import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { httpAppWithTool } from "./helpers/http-app.js";

const fixtures = path.join(import.meta.dirname, "fixtures", "gitlab");
const pushHook = JSON.parse(
  readFileSync(path.join(fixtures, "gitlab-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;
const tagHook = JSON.parse(
  readFileSync(path.join(fixtures, "gitlab-tag-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;

const file = httpAppWithTool("diaspora");

function send(
  body: string | object,
  headers: Record<string, string> = {},
  url = `/hooks/gitlab/${file.tool.name}`,
) {
  return fetch(`${file.app.url}${url}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": file.tool.webhook_secret,
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

describe("GitLab webhooks", () => {
  it("queues a build of checkout_sha for a push to the default branch, and answers 202 with its id", async () => {
    const res = await send(pushHook);
    expect(res.status).toBe(202);
    const body = (await res.json()) as { status: string; build_id: string; commit: string; reason: string };
    expect(body.status).toBe("queued");
    expect(body.commit).toBe(pushHook.checkout_sha);
    expect(body.reason).toContain("default branch");
    const build = await file.app.store.getBuild(body.build_id);
    expect(build).toMatchObject({ status: "pending", commit: pushHook.checkout_sha, tool: "diaspora" });
    expect(build?.source_url).toBe("http://example.com/mike/diaspora.git");
    await file.app.queued();
    expect((await file.app.queue.counts("build")).waiting).toBeGreaterThanOrEqual(1);
  });

  it("finds the tool from the secret alone on POST /hooks/gitlab", async () => {
    const res = await send(
      { ...pushHook, checkout_sha: "1".repeat(40), after: "1".repeat(40) },
      {},
      "/hooks/gitlab",
    );
    expect(res.status).toBe(202);
  });

  it("never builds the same commit twice: a second push of it is answered as a duplicate", async () => {
    const sha = "2".repeat(40);
    const first = await send({ ...pushHook, checkout_sha: sha, after: sha });
    const firstBody = (await first.json()) as { build_id: string };
    const second = await send({ ...pushHook, checkout_sha: sha, after: sha });
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ status: "duplicate", build_id: firstBody.build_id });
  });

  it("answers a redelivery (same Idempotency-Key) as the first delivery, starting nothing", async () => {
    const sha = "3".repeat(40);
    const headers = { "idempotency-key": "delivery-42" };
    const first = (await (await send({ ...pushHook, checkout_sha: sha, after: sha }, headers)).json()) as {
      build_id: string;
    };
    const before = (await file.app.store.listBuilds("diaspora", 100)).length;
    const again = await send({ ...pushHook, checkout_sha: sha, after: sha }, headers);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({
      status: "duplicate",
      build_id: first.build_id,
      redelivery: true,
    });
    expect((await file.app.store.listBuilds("diaspora", 100)).length).toBe(before);
  });

  it("keeps one build waiting per tool: a newer push supersedes the waiting one and says by which", async () => {
    const a = (await (
      await send({ ...pushHook, checkout_sha: "5".repeat(40), after: "5".repeat(40) })
    ).json()) as {
      build_id: string;
    };
    const b = (await (
      await send({ ...pushHook, checkout_sha: "6".repeat(40), after: "6".repeat(40) })
    ).json()) as {
      build_id: string;
    };
    const older = await file.app.store.getBuild(a.build_id);
    expect(older).toMatchObject({ status: "superseded", reason: expect.stringContaining(b.build_id) });
    expect(await file.app.store.getBuild(b.build_id)).toMatchObject({ status: "pending" });
    const waiting = (await file.app.store.listBuilds("diaspora", 100)).filter((x) => x.status === "pending");
    expect(waiting.map((x) => x.id)).toEqual([b.build_id]);
    await file.app.queued();
    expect((await file.app.queue.counts("build")).waiting).toBe(1);
  });

  it("starts nothing for a branch deletion and says why", async () => {
    const res = await send({ ...pushHook, after: "0".repeat(40), checkout_sha: null, commits: [] });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ignored", reason: expect.stringContaining("deleted") });
  });

  it("ignores branches outside the deploy policy and tags without a tag rule, naming the rule", async () => {
    const other = await send({ ...pushHook, ref: "refs/heads/feature", checkout_sha: "4".repeat(40) });
    expect(await other.json()).toMatchObject({
      status: "ignored",
      reason: expect.stringContaining("not the default branch"),
    });
    const tag = await send(tagHook, { "x-gitlab-event": "Tag Push Hook" });
    expect(tag.status).toBe(200);
    expect(await tag.json()).toMatchObject({
      status: "ignored",
      reason: expect.stringContaining("deploy.tags"),
    });
  });

  it("answers 2xx with the reason for events that do not deploy", async () => {
    const res = await send({ object_kind: "issue" }, { "x-gitlab-event": "Issue Hook" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: "ignored",
      reason: expect.stringContaining("Issue Hook"),
    });
  });

  it("rejects a wrong or missing token with 401 before reading the payload", async () => {
    const wrong = await send(pushHook, { "x-gitlab-token": "nope" });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: { code: "unauthorized" } });
    const otherTool = await file.app.createTool("other");
    const crossed = await send(pushHook, { "x-gitlab-token": otherTool.webhook_secret });
    expect(crossed.status).toBe(401);
    const res = await fetch(`${file.app.url}/hooks/gitlab/${file.tool.name}`, { method: "POST", body: "{}" });
    expect(res.status).toBe(401);
  });

  it("answers bad JSON with 400, a non-push body with 400, an oversized body with 413 — never 5xx", async () => {
    const bad = await send("{not json");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "invalid_json" } });
    const shape = await send({ object_kind: "push" });
    expect(shape.status).toBe(400);
    expect(await shape.json()).toMatchObject({ error: { code: "invalid_input" } });
    const big = await send({ ...pushHook, padding: "x".repeat(100 * 1024) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: "payload_too_large" } });
    const type = await send(pushHook, { "content-type": "text/plain" });
    expect(type.status).toBe(415);
  });

  it("never writes the webhook secret to the log", async () => {
    await send(pushHook, { "x-gitlab-token": "nope" });
    const logged = JSON.stringify(file.app.logger.entries);
    expect(logged).not.toContain(file.tool.webhook_secret);
    expect(logged).not.toContain(file.tool.token);
  });
});

describe("API", () => {
  const api = (route: string, init: RequestInit & { token?: string } = {}) =>
    fetch(`${file.app.url}${route}`, {
      ...init,
      headers: {
        authorization: `Bearer ${init.token ?? file.app.adminToken}`,
        "content-type": "application/json",
        ...(init.headers as Record<string, string> | undefined),
      },
    });

  it("creates a tool with the keys the CLI prints, and refuses bad names clearly", async () => {
    const res = await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name: "my-tool" }) });
    expect(res.status).toBe(201);
    const t = (await res.json()) as Record<string, string>;
    for (const key of ["name", "token", "git_url", "webhook_url", "webhook_secret", "redeploy_url"]) {
      expect(typeof t[key]).toBe("string");
    }
    expect(t.git_url).toMatch(/\/git\/my-tool\.git$/);
    for (const name of ["My_Tool", "-x", "a".repeat(53), "../etc", ""]) {
      const bad = await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name }) });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { message: string } }).error.message).toContain(
        "invalid tool name",
      );
    }
    const again = await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name: "my-tool" }) });
    expect(again.status).toBe(409);
  });

  it("lets a tool token see its own tool only", async () => {
    const a = await file.app.createTool("tool-a");
    await file.app.createTool("tool-b");
    const own = await api("/api/v1/tools/tool-a/builds", { token: a.token });
    expect(own.status).toBe(200);
    const other = await api("/api/v1/tools/tool-b/builds", { token: a.token });
    expect(other.status).toBe(403);
    const list = (await (await api("/api/v1/tools", { token: a.token })).json()) as { name: string }[];
    expect(list.map((t) => t.name)).toEqual(["tool-a"]);
    const create = await api("/api/v1/tools", {
      method: "POST",
      token: a.token,
      body: JSON.stringify({ name: "x" }),
    });
    expect(create.status).toBe(403);
    expect((await api("/api/v1/tools", { token: "garbage" })).status).toBe(401);
  });

  it("lists builds with id, status, commit, image and image_digest, and cancels a waiting one", async () => {
    const list = (await (await api("/api/v1/tools/diaspora/builds")).json()) as Record<string, unknown>[];
    expect(list.length).toBeGreaterThan(0);
    for (const key of ["id", "status", "commit", "image", "image_digest"])
      expect(list[0]).toHaveProperty(key);
    const pending = list.find((b) => b.status === "pending")!;
    const cancelled = await api(`/api/v1/builds/${String(pending.id)}/cancel`, { method: "POST" });
    expect(await cancelled.json()).toMatchObject({ status: "cancelled" });
    const twice = await api(`/api/v1/builds/${String(pending.id)}/cancel`, { method: "POST" });
    expect(twice.status).toBe(409);
  });

  it("publishes the JSON schema of slipway.yaml without authentication", async () => {
    const res = await fetch(`${file.app.url}/api/v1/schemas/slipway.json`);
    expect(res.status).toBe(200);
    const schema = (await res.json()) as { properties?: Record<string, unknown> };
    expect(Object.keys(schema.properties ?? {})).toEqual(expect.arrayContaining(["components", "deploy"]));
  });

  it("serves an OpenAPI document describing the routes", async () => {
    const doc = (await (await fetch(`${file.app.url}/api/v1/openapi.json`)).json()) as {
      openapi: string;
      paths: object;
    };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toContain("/api/v1/tools/{tool}/builds");
  });
});
