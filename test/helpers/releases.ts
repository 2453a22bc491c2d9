import type { Release } from "../../services/domain/releases/release.js";

/** A release record of tool `t` for unit tests over in-memory fakes; `extra` sets what a test is about. */
export function testRelease(id: string, extra: Partial<Release> = {}): Release {
  return {
    id,
    tool: "t",
    component: "web",
    build_id: `b-${id}`,
    commit: "c".repeat(40),
    image: "reg/tool-t/web:c",
    image_digest: `sha256:${id}`,
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status: "live",
    created_at: new Date().toISOString(),
    ...extra,
  };
}
