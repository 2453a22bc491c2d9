import { describe, expect, it } from "vitest";
import { ConflictError, NotFoundError } from "../../platform/errors.js";
import { memoryLogger } from "../../platform/logger.js";
import type { Build } from "../builds/build.js";
import { ToolDeletion, type ToolTraces } from "./tool-deletion.js";

function build(id: string, status: Build["status"]): Build {
  return {
    id,
    tool: "t",
    component: "web",
    commit: "a".repeat(40),
    ref: "refs/heads/main",
    source_url: "http://x/git/t.git",
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status,
    created_at: "2026-12-06T00:00:00Z",
  };
}

function fixture(builds: Build[], failing?: string) {
  const removed: string[] = [];
  const cancelled: string[] = [];
  const trace = (what: string): ToolTraces => ({
    what,
    remove: (tool) => {
      if (what === failing) return Promise.reject(new Error("podman is gone"));
      removed.push(`${what}:${tool}`);
      return Promise.resolve();
    },
  });
  const deletion = new ToolDeletion({
    store: {
      getTool: (name) => Promise.resolve(name === "t" ? ({ name } as never) : undefined),
      listBuilds: () => Promise.resolve(builds),
    },
    builds: { cancel: (id) => Promise.resolve(cancelled.push(id)) },
    traces: [trace("containers"), trace("registry images"), trace("state")],
    logger: memoryLogger(),
  });
  return { deletion, removed, cancelled };
}

describe("ToolDeletion", () => {
  it("removes every kind of trace, in order", async () => {
    const { deletion, removed } = fixture([build("b1", "success")]);
    const result = await deletion.delete("t", { force: false });
    expect(removed).toEqual(["containers:t", "registry images:t", "state:t"]);
    expect(result).toEqual({
      name: "t",
      cancelled_builds: [],
      removed: ["containers", "registry images", "state"],
    });
  });

  it("refuses while a build is queued or running, naming it and --force; touches nothing", async () => {
    const { deletion, removed } = fixture([build("b2", "running"), build("b1", "success")]);
    const error = await deletion.delete("t", { force: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as Error).message).toMatch(
      /^wait for build b2 \(running\) to finish, cancel it, or pass --force/,
    );
    expect(removed).toEqual([]);
  });

  it("with force, cancels the unfinished builds first", async () => {
    const { deletion, removed, cancelled } = fixture([build("b3", "pending"), build("b2", "running")]);
    const result = await deletion.delete("t", { force: true });
    expect(cancelled).toEqual(["b3", "b2"]);
    expect(result.cancelled_builds).toEqual(["b3", "b2"]);
    expect(removed).toHaveLength(3);
  });

  it("says which kind failed and that running it again finishes the job; the state is kept", async () => {
    const { deletion, removed } = fixture([], "registry images");
    await expect(deletion.delete("t", { force: false })).rejects.toThrow(
      /^could not remove the registry images of "t" \(podman is gone\); run `slipway tools delete t` again$/,
    );
    expect(removed).toEqual(["containers:t"]);
  });

  it("answers not found for a tool that does not exist", async () => {
    await expect(fixture([]).deletion.delete("nope", { force: false })).rejects.toBeInstanceOf(NotFoundError);
  });
});
