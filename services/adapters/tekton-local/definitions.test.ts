import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readPipelineFiles } from "../tekton/pipelines-dir.js";
import { parseDefinitions } from "./definitions.js";
import { expand } from "./variables.js";

const PIPELINES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../pipelines");

const task = (spec: Record<string, unknown>, name = "t") => ({
  file: "pipelines/t.yaml",
  object: { apiVersion: "tekton.dev/v1", kind: "Task", metadata: { name }, spec },
});
const step = { name: "s", image: "img", command: ["true"] };

describe("the local executor's reading of pipelines/", () => {
  it("accepts the repository's own Tasks and Pipeline, and runs fetch, build, export in that order", async () => {
    const d = parseDefinitions(await readPipelineFiles(PIPELINES));
    expect([...d.tasks.keys()].sort()).toEqual(["slipway-build", "slipway-export", "slipway-fetch"]);
    expect(d.pipelines.get("slipway-build")?.order).toEqual(["fetch", "build", "export"]);
  });

  it("mounts each credential and cache in the one Task that needs it: none where buildpack code runs", async () => {
    const d = parseDefinitions(await readPipelineFiles(PIPELINES));
    const mounted = (name: string) => (d.tasks.get(name)?.spec.workspaces ?? []).map((w) => w.name).sort();
    expect(mounted("slipway-fetch")).toEqual(["deploy-credential", "source"]);
    expect(mounted("slipway-build")).toEqual(["cache", "layers", "source"]);
    // The export, which holds the push credential, takes what its layer cache holds as it is: if the
    // build Task could write there, a tool's buildpack code could plant entries (a link to the
    // credential, say) for the export to read and push.
    expect(mounted("slipway-export")).toEqual(["layer-cache", "layers", "push-credential", "source"]);
  });

  it.each([
    [
      { steps: [step], sidecars: [{ name: "x", image: "y" }] },
      "pipelines/t.yaml: Task t: spec.sidecars is not supported",
    ],
    [
      { steps: [{ ...step, env: [{ name: "A", valueFrom: { secretKeyRef: {} } }] }] },
      "spec.steps[0].env[0].valueFrom is not supported",
    ],
    [
      { params: [{ name: "p", type: "array" }], steps: [step] },
      'spec.params[0].type: only type "string" is supported',
    ],
    [
      { steps: [{ ...step, securityContext: { allowPrivilegeEscalation: true } }] },
      "allowPrivilegeEscalation: only false is supported",
    ],
    [
      { steps: [{ ...step, securityContext: { capabilities: { add: ["NET_ADMIN"] } } }] },
      "capabilities.add is not supported",
    ],
    [
      { steps: [{ ...step, command: ["echo", "$(params.nope)"] }] },
      "spec.steps[0] (s).command[1]: $(params.nope) is not declared",
    ],
    [
      { steps: [{ ...step, command: ["echo", "$(context.taskRun.name)"] }] },
      "$(context.taskRun.name) is not a variable the local executor supports",
    ],
    [{ steps: [{ name: "s", image: "img" }] }, "needs command or script"],
  ])("refuses a Task outside the subset, naming the field (%#)", (spec, message) => {
    expect(() => parseDefinitions([task(spec)])).toThrow(message);
  });

  it("refuses a Pipeline that leaves a Task's required param or workspace unset, or uses `when`", () => {
    const t = task({ params: [{ name: "p" }], workspaces: [{ name: "w" }], steps: [step] });
    const pipeline = (ptask: Record<string, unknown>) => ({
      file: "pipelines/p.yaml",
      object: {
        apiVersion: "tekton.dev/v1",
        kind: "Pipeline",
        metadata: { name: "p" },
        spec: { workspaces: [{ name: "w" }], tasks: [{ name: "a", taskRef: { name: "t" }, ...ptask }] },
      },
    });
    const w = [{ name: "w", workspace: "w" }];
    expect(() => parseDefinitions([t, pipeline({ workspaces: w })])).toThrow("Task t needs param p");
    expect(() => parseDefinitions([t, pipeline({ params: [{ name: "p", value: "x" }] })])).toThrow(
      "Task t needs workspace w",
    );
    expect(() =>
      parseDefinitions([t, pipeline({ params: [{ name: "p", value: "x" }], workspaces: w, when: [] })]),
    ).toThrow("spec.tasks[0].when is not supported");
  });

  it("substitutes Tekton's variables and leaves a script's shell $(…) alone", () => {
    const out = expand(
      'test "$(git rev-parse HEAD)" = "$(params.commit)" > $(results.t.path)',
      (ref) => (ref.kind === "param" ? "abc" : "/r"),
      "here",
    );
    expect(out).toBe('test "$(git rev-parse HEAD)" = "abc" > /r');
  });
});
