import { describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import type { Build } from "../builds/build.js";
import type { Tool } from "../tools/tool.js";
import { StackWaitNotes } from "./stack-wait.js";

function build(id: string, tool: string, status: Build["status"]): Build {
  return {
    id,
    tool,
    component: "web",
    commit: "a".repeat(40),
    ref: "refs/heads/main",
    source_url: "http://x/git/t.git",
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status,
    phase: status === "pending" ? "queued" : "build",
    created_at: "2026-12-06T00:00:00Z",
  };
}

function fixture() {
  const builds = [
    build("b1", "alpha", "pending"),
    build("b2", "alpha", "success"),
    build("b3", "beta", "pending"),
  ];
  const lines = new Map<string, string[]>();
  const store = {
    listTools: () => Promise.resolve([{ name: "alpha" }, { name: "beta" }] as Tool[]),
    listBuilds: (tool: string) => Promise.resolve(builds.filter((b) => b.tool === tool)),
  };
  const logs = {
    append: (id: string, line: string) => {
      lines.set(id, [...(lines.get(id) ?? []), line]);
      return Promise.resolve();
    },
  };
  return { notes: new StackWaitNotes(store, logs, memoryLogger()), lines };
}

describe("StackWaitNotes", () => {
  it("tells every waiting build the slower image's step, once per step", async () => {
    const { notes, lines } = fixture();
    notes.step({ image: "build", step: 1, total: 7 });
    notes.step({ image: "run", step: 1, total: 7 });
    notes.step({ image: "run", step: 3, total: 7 });
    notes.step({ image: "run", step: 3, total: 7 });
    notes.step({ image: "build", step: 2, total: 7 });
    await notes.settled();
    const expected = [1, 2].map(
      (n) => `waiting for the stack images to be built (step ${n} of 7) — first start only`,
    );
    expect(lines.get("b1")).toEqual(expected);
    expect(lines.get("b3")).toEqual(expected);
    // A finished build's log is left alone.
    expect(lines.get("b2")).toBeUndefined();
  });
});
