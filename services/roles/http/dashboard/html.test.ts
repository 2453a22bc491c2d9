import { describe, expect, it } from "vitest";
import { escapeHtml, html } from "./html.js";
import { buildPage, envValuePage, toolPage, type ToolPageData, type Viewer } from "./pages.js";

/** A tool's addresses as the tool page gets them. */
const TOOL = {
  name: "t",
  git_url: "http://s/git/t.git",
  webhook_url: "http://s/hooks/gitlab/t",
  web_url: "http://t.localhost",
  redeploy_url: "http://s/hooks/redeploy/t",
};

const HOSTILE = `<script>alert("x")</script><img src=x onerror='y'>&`;

describe("dashboard HTML escaping", () => {
  it("escapes every interpolated value, in text and attributes, and keeps nested templates", () => {
    const inner = html`<b>${HOSTILE}</b>`;
    const page = html`<a title="${HOSTILE}"
      >${inner}${[HOSTILE, html`<i>ok</i>`]}${null}${undefined}${false}</a
    >`;
    expect(page.text).not.toContain("<script>");
    expect(page.text).not.toContain("<img");
    expect(page.text).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
    expect(page.text).toContain("onerror=&#39;y&#39;");
    expect(page.text).toContain("<b>&lt;script&gt;");
    expect(page.text).toContain("<i>ok</i>");
    expect(escapeHtml("&amp;")).toBe("&amp;amp;");
  });

  it("renders a hostile commit message, ref and log line as text on the tool and build pages", () => {
    const build = {
      id: "b1",
      tool: "t",
      component: "web",
      status: "failure" as const,
      reason: HOSTILE,
      commit: "c".repeat(40),
      ref: `refs/heads/${HOSTILE}`,
      source_url: "http://s/git/t.git",
      trigger: { kind: "git_push" as const, ref: HOSTILE },
      log_tail: [HOSTILE],
      created_at: new Date().toISOString(),
    };
    const data: ToolPageData = {
      tool: TOOL,
      gitlab: { project_url: `javascript:${HOSTILE}` },
      live: undefined,
      builds: [build],
      releases: [],
      jobs: [],
      envNames: [HOSTILE],
      now: new Date(),
    };
    const pages = [
      toolPage(data).text,
      buildPage({ tool: "t", build, lines: [HOSTILE, `===> ${HOSTILE}`] }).text,
    ];
    for (const text of pages) {
      expect(text).not.toContain("<script>alert");
      expect(text).not.toContain("<img src=x");
      expect(text).toContain("&lt;script&gt;");
    }
    expect(pages[0]).not.toContain('href="javascript:');
  });
});

const viewer: Viewer = { principal: { kind: "tool", tool: "t" }, csrf: "csrf-1" };
const base: ToolPageData = {
  tool: TOOL,
  gitlab: undefined,
  live: undefined,
  builds: [],
  releases: [],
  jobs: [],
  envNames: ["API_KEY"],
  now: new Date("2026-12-07T01:00:00Z"),
};

describe("the tool page", () => {
  it("offers each env var's value behind a form with the session's CSRF token", () => {
    const text = toolPage(base, viewer).text;
    expect(text).toContain('action="/ui/tools/t/envvars/API_KEY"');
    expect(text).toContain('aria-label="Show value of API_KEY"');
    expect(text).toContain('name="csrf" value="csrf-1"');
  });

  it("shows CPU and memory now and as a sparkline of the samples, or says none were taken", () => {
    const at = (m: number) => `2026-12-07T00:${String(m).padStart(2, "0")}:00.000Z`;
    const usageHistory = [0, 1, 2].map((m) => ({
      at: at(57 + m),
      kinds: { web: { cpuPercent: m + 0.5, memoryBytes: (m + 1) * 1024 ** 2 } },
    }));
    const text = toolPage({ ...base, usageHistory }, viewer).text;
    expect(text).toContain("Resource use, last hour");
    expect(text).toMatch(/Webservice<\/td>\s*<td data-label="CPU now">2\.5%<\/td>/);
    expect(text).toContain(">3.0 MiB</td>");
    expect(text).toContain('aria-label="CPU of webservice: 3 samples, lowest 0.5%, highest 2.5%"');
    expect(text).toContain('aria-label="Memory of webservice: 3 samples, lowest 1.0 MiB, highest 3.0 MiB"');
    expect(text).not.toContain("Jobs</td>");
    expect(toolPage({ ...base, usageHistory: [] }, viewer).text).toContain("No samples in the last hour");
    // Where nothing samples (the cluster profile), no section at all.
    expect(toolPage(base, viewer).text).not.toContain("Resource use");
  });
});

describe("the webservice part", () => {
  it("shows each replica's CPU and memory now against its limit, in the page's units", () => {
    const webservice = {
      state: "running",
      replicas: { ready: 2, wanted: 2 },
      note: null,
      output: [],
      usage: [
        {
          process: "web",
          replica: 0,
          cpuPercent: 0.523,
          memoryBytes: 21 * 1024 ** 2,
          memoryLimitBytes: 256 * 1024 ** 2,
        },
        {
          process: "web",
          replica: 1,
          cpuPercent: 12,
          memoryBytes: 900 * 1024,
          memoryLimitBytes: 2 * 1024 ** 3,
        },
      ],
    };
    const text = toolPage({ ...base, webservice }, viewer).text;
    expect(text).toMatch(/<td[^>]*>0\.5%<\/td>\s*<td[^>]*>21\.0 MiB \/ 256\.0 MiB<\/td>/);
    expect(text).toMatch(/<td[^>]*>12\.0%<\/td>\s*<td[^>]*>900 KiB \/ 2\.00 GiB<\/td>/);
  });
});

describe("the env var value page", () => {
  it("shows the masked value and its length, escaped", () => {
    const text = envValuePage({ tool: "t", name: "A", masked: "<b•••b>", length: 20 }, viewer).text;
    expect(text).toContain("&lt;b•••b&gt;");
    expect(text).toContain("20 characters");
  });
});
