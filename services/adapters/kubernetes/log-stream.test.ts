import { describe, expect, it } from "vitest";
import { LogCursor } from "./log-stream.js";

describe("LogCursor", () => {
  it("hands each line on once across overlapping reads, also lines sharing a timestamp", () => {
    const c = new LogCursor();
    c.newRead();
    expect(
      c.take(["2026-12-03T14:10:13.5Z a", "2026-12-03T14:10:14.1Z b", "2026-12-03T14:10:14.1Z c"]),
    ).toEqual(["a", "b", "c"]);
    // The next read asks from the last second seen, so the API sends that second again.
    expect(c.sinceTime).toBe("2026-12-03T14:10:14Z");
    c.newRead();
    expect(
      c.take([
        "2026-12-03T14:10:14.05Z before",
        "2026-12-03T14:10:14.1Z b",
        "2026-12-03T14:10:14.1Z c",
        "2026-12-03T14:10:14.1Z d",
        "2026-12-03T14:10:14.100000001Z e",
      ]),
    ).toEqual(["d", "e"]);
  });

  it("compares RFC3339Nano timestamps whose fractions have different lengths", () => {
    const c = LogCursor.from("2026-12-03T14:10:13.120Z");
    c.newRead();
    expect(c.take(["2026-12-03T14:10:13.11999Z old", "2026-12-03T14:10:13.2Z new", "no timestamp"])).toEqual([
      "new",
      "no timestamp",
    ]);
  });
});
