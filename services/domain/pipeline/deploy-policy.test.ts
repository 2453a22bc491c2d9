import { describe, expect, it } from "vitest";
import { decide, globMatches } from "./deploy-policy.js";

const none = { branches: [], tags: [] };

describe("deploy policy", () => {
  it("deploys the default branch and nothing else by default", () => {
    expect(decide(none, "refs/heads/main", "main").deploy).toBe(true);
    const other = decide(none, "refs/heads/feature", "main");
    expect(other.deploy).toBe(false);
    expect(other.reason).toContain("not the default branch (main)");
    expect(decide(none, "refs/tags/v1.0", "main").reason).toContain("no deploy.tags rule");
  });

  it("follows branch and tag globs, and names the rule that matched", () => {
    const policy = { branches: ["release/*"], tags: ["v*"] };
    expect(decide(policy, "refs/heads/release/2026-11", "main")).toEqual({
      deploy: true,
      reason: 'branch release/2026-11 matches deploy.branches "release/*"',
    });
    expect(decide(policy, "refs/heads/main", "main").deploy).toBe(false);
    expect(decide(policy, "refs/tags/v2.1.0", "main").deploy).toBe(true);
    expect(decide(policy, "refs/tags/nightly", "main").deploy).toBe(false);
  });

  it("matches * within a segment and ** across segments", () => {
    expect(globMatches("release/*", "release/a/b")).toBe(false);
    expect(globMatches("release/**", "release/a/b")).toBe(true);
    expect(globMatches("v?.*", "v1.2")).toBe(true);
    expect(globMatches("a.b", "axb")).toBe(false);
  });

  it("refuses refs that are neither branches nor tags", () => {
    expect(decide(none, "refs/merge-requests/1/head", "main").deploy).toBe(false);
  });
});
