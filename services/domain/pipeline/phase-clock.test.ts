import { describe, expect, it } from "vitest";
import { PhaseClock } from "./phase-clock.js";

describe("PhaseClock", () => {
  it("adds up each phase's time in the order the phases ran, a phase entered twice counting once", () => {
    let t = 0;
    const clock = new PhaseClock("fetch", () => t);
    t = 200;
    clock.enter("detect");
    t = 700;
    clock.enter("detect");
    t = 900;
    clock.enter("build");
    t = 3000;
    clock.enter("export");
    t = 3450;
    expect(clock.timings()).toEqual({ fetch: 200, detect: 700, build: 2100, export: 450, total: 3450 });
    expect(clock.summary()).toBe("fetch 0.2 s, detect 0.7 s, build 2.1 s, export 0.5 s, total 3.5 s");
  });
});
