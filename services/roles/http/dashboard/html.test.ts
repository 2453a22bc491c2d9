import { describe, expect, it } from "vitest";
import { escapeHtml, html } from "./html.js";
import { buildPage, toolPage, type ToolPageData } from "./pages.js";

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
      tool: {
        name: "t",
        git_url: "http://s/git/t.git",
        webhook_url: "http://s/hooks/gitlab/t",
        web_url: "http://t.localhost",
        redeploy_url: "http://s/hooks/redeploy/t",
      },
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
