import type { Build, BuildStatus } from "../../services/domain/builds/build.js";
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

/** The build record a release came from, for unit tests that follow a push to its end. */
export function testBuildOf(release: Release, status: BuildStatus): Build {
  return {
    id: release.build_id,
    tool: release.tool,
    component: release.component,
    commit: release.commit,
    ref: "refs/heads/main",
    source_url: `http://s/git/${release.tool}.git`,
    trigger: release.trigger,
    status,
    created_at: release.created_at,
  };
}
