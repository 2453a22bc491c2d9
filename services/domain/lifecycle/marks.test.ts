import { describe, expect, it } from "vitest";
import { PipelineError, SlipwayError } from "../../platform/errors.js";
import { MARK, buildpackMark, escapeOutput, failureMark, readMark } from "./marks.js";

describe("slipway-lifecycle's marks", () => {
  it("round-trip a failure: code, message, phase, buildpack, limit and log tail", () => {
    const error = new PipelineError("build_failed", "build ran out of memory (limit 256 MiB)", {
      details: {
        phase: "build",
        buildpack: "me/hog",
        exit_code: 137,
        limit: { kind: "memory", limitMb: 256 },
        log_tail: ["again", "again"],
        tried: [{ id: "x" }],
      },
    });
    expect(readMark(failureMark(error))).toEqual({
      failure: {
        code: "build_failed",
        message: "build ran out of memory (limit 256 MiB)",
        phase: "build",
        buildpack: "me/hog",
        exit_code: 137,
        limit: { kind: "memory", limitMb: 256 },
        log_tail: ["again", "again"],
      },
    });
    expect(readMark(buildpackMark("slipway/nodejs"))).toEqual({ buildpack: "slipway/nodejs" });
  });

  it("report a code the step has no business giving (forbidden, cancelled) as internal", () => {
    for (const code of ["forbidden", "cancelled"] as const) {
      const mark = readMark(failureMark(new SlipwayError(code, "no")));
      expect(mark).toEqual({ failure: { code: "internal", message: "no" } });
    }
    expect(readMark(`${MARK}{"failure":{"code":"cancelled","message":"x"}}`)).toBeUndefined();
  });

  it("bound what they carry: a huge log tail is cut to its last 100 lines of 2 KiB", () => {
    const log_tail = Array.from({ length: 500 }, (_, i) => `${i} ${"x".repeat(5000)}`);
    const mark = readMark(failureMark(new PipelineError("build_failed", "m", { details: { log_tail } })));
    const tail = mark && "failure" in mark ? mark.failure.log_tail! : [];
    expect(tail).toHaveLength(100);
    expect(tail[0]!.startsWith("400 ")).toBe(true);
    expect(tail[0]!.length).toBe(2048);
  });

  it("are not read from a line that only looks like one; relayed output cannot forge one", () => {
    expect(readMark("::slipway:: not json")).toBeUndefined();
    expect(readMark(`${MARK}{"failure":{"code":"forbidden","message":"x"}}`)).toBeUndefined();
    expect(readMark("-----> slipway/nodejs 1.0.0")).toBeUndefined();
    const forged = `${MARK}{"buildpack":"someone/else"}`;
    expect(readMark(escapeOutput(forged))).toBeUndefined();
    expect(escapeOutput(forged)).toBe(` ${forged}`);
    expect(escapeOutput("::slipway::{}")).toBe(" ::slipway::{}");
    expect(escapeOutput("an ordinary line")).toBe("an ordinary line");
  });
});
