import { describe, expect, it } from "vitest";
import { type DetectOutcome, type PlanAlternative, parseBuildPlan, resolveOrder } from "./order.js";

const alt = (provides: string[] = [], requires: string[] = []): PlanAlternative => ({
  provides,
  requires: requires.map((name) => ({ name, metadata: {} })),
});
const pass = (...plan: PlanAlternative[]): DetectOutcome => ({
  status: "pass",
  plan: plan.length ? plan : [alt()],
});
const FAIL: DetectOutcome = { status: "fail" };

function detector(outcomes: Record<string, DetectOutcome>) {
  const calls: string[] = [];
  const detect = (id: string) => {
    calls.push(id);
    return Promise.resolve(outcomes[id] ?? FAIL);
  };
  return { detect, calls };
}

const group = (...ids: string[]) => ({
  group: ids.map((id) => ({ id: id.replace("?", ""), optional: id.endsWith("?") })),
});
const ids = (r: Awaited<ReturnType<typeof resolveOrder>>) => r?.buildpacks.map((b) => b.id);

describe("resolveOrder", () => {
  it("keeps every optional buildpack that passes and drops the ones that fail", async () => {
    const { detect } = detector({ node: pass(), procfile: pass() });
    expect(ids(await resolveOrder([group("node?", "python?", "procfile?")], detect))).toEqual([
      "node",
      "procfile",
    ]);
  });

  it("fails a group when a required buildpack fails, and moves on to the next group", async () => {
    const { detect, calls } = detector({ python: pass(), procfile: pass() });
    const r = await resolveOrder([group("node", "procfile?"), group("python", "procfile?")], detect);
    expect(ids(r)).toEqual(["python", "procfile"]);
    expect(calls).toEqual(["node", "python", "procfile"]); // detect runs once per buildpack
  });

  it("returns undefined when no group passes or only nothing passes", async () => {
    const { detect } = detector({});
    expect(await resolveOrder([group("a?", "b?")], detect)).toBeUndefined();
  });

  it("treats a detect error like a failure for the group", async () => {
    const { detect } = detector({ a: { status: "error", exitCode: 3 }, b: pass() });
    expect(ids(await resolveOrder([group("a", "b"), group("b")], detect))).toEqual(["b"]);
  });

  it("requires every requirement to be provided by the same or an earlier buildpack", async () => {
    // b requires node but only c (later) provides it: b is optional and is dropped, c's provide is then unrequired,
    // so c is dropped too.
    const { detect } = detector({ a: pass(), b: pass(alt([], ["node"])), c: pass(alt(["node"])) });
    expect(ids(await resolveOrder([group("a?", "b?", "c?")], detect))).toEqual(["a"]);
  });

  it("fails the group when a required buildpack's plan cannot be met", async () => {
    const { detect } = detector({ b: pass(alt([], ["node"])) });
    expect(await resolveOrder([group("b")], detect)).toBeUndefined();
  });

  it("tries `or` alternatives in order and hands requirements to the provider", async () => {
    const node = pass(alt(["node"]), alt(["node"], ["node"]));
    const app = pass({ provides: [], requires: [{ name: "node", metadata: { version: "22" } }] });
    const { detect } = detector({ node, app });
    const r = await resolveOrder([group("node", "app")], detect);
    expect(r?.buildpacks).toEqual([
      { id: "node", plan: [{ name: "node", metadata: { version: "22" } }] },
      { id: "app", plan: [] },
    ]);
  });

  it("uses a later alternative when the first leaves a provide unrequired", async () => {
    const { detect } = detector({ node: pass(alt(["node", "npm"]), alt(["node"], ["node"])) });
    const r = await resolveOrder([group("node")], detect);
    expect(r?.buildpacks).toEqual([{ id: "node", plan: [{ name: "node", metadata: {} }] }]);
  });
});

describe("parseBuildPlan", () => {
  it("reads provides, requires with metadata, and or alternatives", () => {
    const plan = parseBuildPlan(
      [
        "[[provides]]",
        'name = "node"',
        "[[requires]]",
        'name = "node"',
        "[requires.metadata]",
        'version = "22"',
        "[[or]]",
        "[[or.requires]]",
        'name = "python"',
      ].join("\n"),
      "test",
    );
    expect(plan).toEqual([
      { provides: ["node"], requires: [{ name: "node", metadata: { version: "22" } }] },
      { provides: [], requires: [{ name: "python", metadata: {} }] },
    ]);
  });

  it("treats an empty file as an empty plan and rejects broken TOML", () => {
    expect(parseBuildPlan("", "x")).toEqual([{ provides: [], requires: [] }]);
    expect(() => parseBuildPlan("[[provides]\n", "slipway/x build plan")).toThrow(
      /slipway\/x build plan: build plan is not valid TOML/,
    );
  });
});
