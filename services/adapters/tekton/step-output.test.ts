import { describe, expect, it } from "vitest";
import { PipelineError } from "../../platform/errors.js";
import { buildpackMark, failureMark } from "../../domain/lifecycle/marks.js";
import { StepOutput, TAIL_LINES } from "./step-output.js";

describe("StepOutput", () => {
  it("keeps the last lines for the log, and takes the lifecycle's marks out of it", () => {
    const output = new StepOutput();
    const shown: string[] = [];
    const lines = [
      buildpackMark("slipway/nodejs"),
      ...Array.from({ length: 40 }, (_, i) => `line ${i}`),
      failureMark(
        new PipelineError("build_failed", "it broke", { details: { buildpack: "slipway/nodejs" } }),
      ),
    ];
    for (const line of lines) {
      const s = output.take(line);
      if (s !== undefined) shown.push(s);
    }
    expect(shown).toHaveLength(40);
    expect(output.tail).toHaveLength(TAIL_LINES);
    expect(output.tail.at(-1)).toBe("line 39");
    expect(output.buildpack).toBe("slipway/nodejs");
    expect(output.failure).toMatchObject({ code: "build_failed", message: "it broke" });
  });
});
