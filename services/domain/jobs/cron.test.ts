import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { expandSchedule, nextRun } from "./cron.js";

const at = (iso: string) => new Date(iso);
const next = (expr: string, after: string) => nextRun(expr, at(after)).toISOString();

describe("nextRun", () => {
  it("fires every minute for * * * * *, strictly after the given time", () => {
    expect(next("* * * * *", "2026-03-01T10:00:00.000Z")).toBe("2026-03-01T10:01:00.000Z");
    expect(next("* * * * *", "2026-03-01T10:00:59.999Z")).toBe("2026-03-01T10:01:00.000Z");
  });

  it("handles steps, ranges and lists", () => {
    expect(next("*/15 * * * *", "2026-03-01T10:14:00Z")).toBe("2026-03-01T10:15:00.000Z");
    expect(next("*/15 * * * *", "2026-03-01T10:45:00Z")).toBe("2026-03-01T11:00:00.000Z");
    expect(next("5/20 * * * *", "2026-03-01T10:06:00Z")).toBe("2026-03-01T10:25:00.000Z");
    expect(next("0 9-17/4 * * *", "2026-03-01T13:00:00Z")).toBe("2026-03-01T17:00:00.000Z");
    expect(next("30 1,13 * * *", "2026-03-01T13:30:00Z")).toBe("2026-03-02T01:30:00.000Z");
  });

  it("rolls over days, months and years", () => {
    expect(next("13 9 * * *", "2026-12-31T09:13:00Z")).toBe("2027-01-01T09:13:00.000Z");
    expect(next("0 0 1 * *", "2026-01-15T00:00:00Z")).toBe("2026-02-01T00:00:00.000Z");
    expect(next("0 0 29 2 *", "2026-03-01T00:00:00Z")).toBe("2028-02-29T00:00:00.000Z");
    expect(next("0 12 * jun *", "2026-07-01T00:00:00Z")).toBe("2027-06-01T12:00:00.000Z");
  });

  it("uses weekdays, 7 as Sunday, and either day field when both are restricted (Vixie cron)", () => {
    // 2026-03-01 is a Sunday.
    expect(next("0 8 * * mon", "2026-03-01T00:00:00Z")).toBe("2026-03-02T08:00:00.000Z");
    expect(next("0 8 * * 7", "2026-03-02T00:00:00Z")).toBe("2026-03-08T08:00:00.000Z");
    expect(next("0 0 15 * fri", "2026-03-01T00:00:00Z")).toBe("2026-03-06T00:00:00.000Z");
  });

  it("follows a spread macro: @hourly fires once an hour at the job's own minute", () => {
    const expr = expandSchedule("@hourly", "mytool", "cleanup");
    const first = nextRun(expr, at("2026-03-01T00:00:00Z"));
    const second = nextRun(expr, first);
    expect(second.getTime() - first.getTime()).toBe(3600_000);
    expect(first.getUTCMinutes()).toBe(Number(expr.split(" ")[0]));
  });

  it("rejects an expression that never matches", () => {
    expect(() => nextRun("0 0 31 2 *", at("2026-01-01T00:00:00Z"))).toThrow(InputError);
    expect(() => nextRun("0 0 31 2 *", at("2026-01-01T00:00:00Z"))).toThrow(/never matches/);
  });
});
