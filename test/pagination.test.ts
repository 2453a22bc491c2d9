import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobService } from "../services/domain/jobs/job-service.js";
import { INITIAL_STATUS } from "../services/domain/jobs/job.js";
import type { Config } from "../services/platform/env.js";
import { memoryLogger } from "../services/platform/logger.js";
import { ApiClient } from "../services/roles/cli/client.js";
import { httpAppWithTool } from "./helpers/http-app.js";
import { type JobsApi, startJobsApi, testJob } from "./helpers/jobs-api.js";

/**
 * Lists of tools, builds and jobs come in pages: `?limit=&cursor=`, a default and a maximum limit, and a
 * `Link: <…>; rel="next"` header while more follow. The CLI follows the pages.
 */
describe("paged lists", () => {
  const h = httpAppWithTool("paged");
  const BUILDS = 120;
  const admin = () => ({ authorization: `Bearer ${h.app.adminToken}` });
  const get = (path: string) => fetch(`${h.app.url}${path}`, { headers: admin() });
  const nextOf = (res: Response) => /<([^>]+)>; rel="next"/.exec(res.headers.get("link") ?? "")?.[1];

  beforeAll(async () => {
    for (const name of ["paged-b", "paged-c", "paged-d", "paged-e"]) await h.app.createTool(name);
    for (let i = 0; i < BUILDS; i++) {
      await h.app.store.createBuild({
        id: `b${String(i).padStart(4, "0")}`,
        tool: "paged",
        component: "web",
        commit: "0".repeat(40),
        ref: "refs/heads/main",
        source_url: "http://example.invalid/repo.git",
        trigger: { kind: "api", ref: "refs/heads/main" },
        status: "success",
        created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      });
    }
  });

  it("walks the tools two at a time through the Link header, each once, and ends without a Link", async () => {
    const seen: string[] = [];
    let pages = 0;
    for (let next: string | undefined = "/api/v1/tools?limit=2"; next; pages++) {
      const res = await get(next);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { name: string }[];
      expect(page.length).toBeLessThanOrEqual(2);
      seen.push(...page.map((t) => t.name));
      next = nextOf(res);
    }
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual(["paged", "paged-b", "paged-c", "paged-d", "paged-e"]);
    const all = await get("/api/v1/tools");
    expect(all.headers.get("link")).toBeNull();
    expect(((await all.json()) as unknown[]).length).toBe(5);
  });

  it("answers 50 builds by default, newest first, with a Link to the next 50; the CLI's client prints them all", async () => {
    const res = await get("/api/v1/tools/paged/builds");
    const first = (await res.json()) as { id: string }[];
    expect(first.map((b) => b.id)).toEqual(
      Array.from({ length: 50 }, (_, i) => `b${String(BUILDS - 1 - i).padStart(4, "0")}`),
    );
    expect(nextOf(res)).toMatch(/^\/api\/v1\/tools\/paged\/builds\?limit=50&cursor=[A-Za-z0-9_-]+$/);

    const client = await ApiClient.fromConfig({
      home: "/nonexistent",
      cli: { url: h.app.url, token: h.app.adminToken, urlFrom: "SLIPWAY_URL" },
    } as unknown as Config);
    const ids = (await client.list<{ id: string }>("/api/v1/tools/paged/builds")).map((b) => b.id);
    expect(ids).toHaveLength(BUILDS);
    expect(new Set(ids).size).toBe(BUILDS);
    expect(ids[BUILDS - 1]).toBe("b0000");
  });

  it("a tool created (sorting first) and a build added while a client walks the pages neither repeats nor skips one", async () => {
    const names: string[] = [];
    let res = await get("/api/v1/tools?limit=2");
    names.push(...((await res.json()) as { name: string }[]).map((t) => t.name));
    // Older than every tool listed: with an offset for a cursor, the next page would start one earlier.
    const model = (await h.app.store.getTool("paged"))!;
    await h.app.store.createTool({
      ...model,
      name: "paged-early",
      created_at: "2000-01-01T00:00:00.000Z",
      token_hash: "early-token",
      webhook_secret_hash: "early-webhook",
      redeploy_token_hash: "early-redeploy",
    });
    for (let next = nextOf(res); next; next = nextOf(res)) {
      res = await get(next);
      names.push(...((await res.json()) as { name: string }[]).map((t) => t.name));
    }
    expect(names.sort()).toEqual(["paged", "paged-b", "paged-c", "paged-d", "paged-e"]);

    const ids: string[] = [];
    res = await get("/api/v1/tools/paged/builds?limit=50");
    ids.push(...((await res.json()) as { id: string }[]).map((b) => b.id));
    await h.app.store.createBuild({
      id: "b9999",
      tool: "paged",
      component: "web",
      commit: "1".repeat(40),
      ref: "refs/heads/main",
      source_url: "http://example.invalid/repo.git",
      trigger: { kind: "api", ref: "refs/heads/main" },
      status: "success",
      created_at: new Date(Date.UTC(2026, 0, 2)).toISOString(),
    });
    for (let next = nextOf(res); next; next = nextOf(res)) {
      res = await get(next);
      ids.push(...((await res.json()) as { id: string }[]).map((b) => b.id));
    }
    expect(ids).toHaveLength(BUILDS);
    expect(new Set(ids).size).toBe(BUILDS);
  });

  it.each([
    ["/api/v1/tools?limit=0", "limit must be a whole number from 1 to 1000"],
    ["/api/v1/tools?limit=1001", "limit must be a whole number from 1 to 1000"],
    ["/api/v1/tools?limit=ten", "limit must be a whole number from 1 to 1000"],
    ["/api/v1/tools?limit=1&limit=2", "limit must be a whole number from 1 to 1000"],
    ["/api/v1/tools?cursor=-1", "invalid cursor"],
    ["/api/v1/tools/paged/builds?limit=501", "limit must be a whole number from 1 to 500"],
    ["/api/v1/tools/paged/builds?cursor=abc", "invalid cursor"],
  ])("%s is a 400 saying what to send", async (path, message) => {
    const res = await get(path);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.message).toContain(message);
  });
});

describe("paged job lists", () => {
  const JOBS = 230;
  let api: JobsApi;

  const at = new Date("2026-01-01T00:00:00Z");
  const view = (name: string) => ({ job: testJob("t", name, at), status: INITIAL_STATUS });
  const listed = Array.from({ length: JOBS }, (_, i) => view(`job-${String(i).padStart(3, "0")}`));

  beforeAll(async () => {
    // JobService's paging, over a list the test changes.
    const list = (_tool: string, page?: { after?: string; limit: number }) =>
      Promise.resolve(
        [...listed]
          .sort((a, b) => a.job.name.localeCompare(b.job.name))
          .filter((j) => page?.after === undefined || j.job.name.localeCompare(page.after) > 0)
          .slice(0, page?.limit),
      );
    api = await startJobsApi({ list } as unknown as JobService, "t", memoryLogger());
  });
  afterAll(async () => {
    await api?.close();
  });

  it("answers 100 jobs by default with a Link to the next page; the last page has none; a job added meanwhile moves nothing", async () => {
    const res = await fetch(api.base);
    expect(((await res.json()) as unknown[]).length).toBe(100);
    const next = /<([^>]+)>; rel="next"/.exec(res.headers.get("link") ?? "")?.[1];
    expect(next).toMatch(/^\/api\/v1\/tools\/t\/jobs\?limit=100&cursor=/);
    // Sorts before the page just read: an offset cursor would answer job-099 again.
    listed.push(view("job-000a"));
    const second = await fetch(`${api.base.replace(/\/api\/v1\/tools\/t\/jobs$/, "")}${next}`);
    const names = ((await second.json()) as { name: string }[]).map((j) => j.name);
    expect(names[0]).toBe("job-100");
    const then = /<([^>]+)>; rel="next"/.exec(second.headers.get("link") ?? "")?.[1];
    const last = await fetch(`${api.base.replace(/\/api\/v1\/tools\/t\/jobs$/, "")}${then}`);
    const lastNames = ((await last.json()) as { name: string }[]).map((j) => j.name);
    expect(lastNames).toHaveLength(30);
    expect(lastNames[0]).toBe("job-200");
    expect(last.headers.get("link")).toBeNull();
    const big = await fetch(`${api.base}?limit=5000`);
    expect(big.status).toBe(400);
  });
});
