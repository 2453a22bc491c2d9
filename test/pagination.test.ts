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
    expect(nextOf(res)).toBe("/api/v1/tools/paged/builds?limit=50&cursor=50");

    const client = await ApiClient.fromConfig({
      home: "/nonexistent",
      cli: { url: h.app.url, token: h.app.adminToken, urlFrom: "SLIPWAY_URL" },
    } as unknown as Config);
    const ids = (await client.list<{ id: string }>("/api/v1/tools/paged/builds")).map((b) => b.id);
    expect(ids).toHaveLength(BUILDS);
    expect(new Set(ids).size).toBe(BUILDS);
    expect(ids[BUILDS - 1]).toBe("b0000");
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

  beforeAll(async () => {
    const at = new Date("2026-01-01T00:00:00Z");
    const listed = Array.from({ length: JOBS }, (_, i) => ({
      job: testJob("t", `job-${String(i).padStart(3, "0")}`, at),
      status: INITIAL_STATUS,
    }));
    api = await startJobsApi(
      { list: () => Promise.resolve(listed) } as unknown as JobService,
      "t",
      memoryLogger(),
    );
  });
  afterAll(async () => {
    await api?.close();
  });

  it("answers 100 jobs by default with a Link to the next page; the last page has none", async () => {
    const res = await fetch(api.base);
    expect(((await res.json()) as unknown[]).length).toBe(100);
    expect(res.headers.get("link")).toBe('</api/v1/tools/t/jobs?limit=100&cursor=100>; rel="next"');
    const last = await fetch(`${api.base}?limit=100&cursor=200`);
    const names = ((await last.json()) as { name: string }[]).map((j) => j.name);
    expect(names).toHaveLength(30);
    expect(names[0]).toBe("job-200");
    expect(last.headers.get("link")).toBeNull();
    const big = await fetch(`${api.base}?limit=5000`);
    expect(big.status).toBe(400);
  });
});
