import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { expandSchedule, validateCron } from "./cron.js";

const tools = Array.from({ length: 200 }, (_, i) => `tool-${i}`);

function fields(expr: string): string[] {
  return expr.split(" ");
}

describe("expandSchedule", () => {
  it("gives the same job the same time on every render", () => {
    for (const macro of ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"]) {
      expect(expandSchedule(macro, "mytool", "update")).toBe(expandSchedule(macro, "mytool", "update"));
    }
  });

  it("spreads @daily jobs of different tools over the day", () => {
    const minutes = new Set(tools.map((t) => fields(expandSchedule("@daily", t, "update"))[0]));
    const hours = new Set(tools.map((t) => fields(expandSchedule("@daily", t, "update"))[1]));
    expect(minutes.size).toBeGreaterThan(40);
    expect(hours.size).toBeGreaterThan(16);
    expect(fields(expandSchedule("@daily", "alpha", "update"))[0]).not.toBe(
      fields(expandSchedule("@daily", "beta", "update"))[0],
    );
  });

  it("seeds by tool and job, so two jobs of one tool differ too", () => {
    const perJob = new Set(tools.map((t) => expandSchedule("@daily", "mytool", t)));
    expect(perJob.size).toBeGreaterThan(150);
  });

  it("keeps every drawn field in range and the macro's shape", () => {
    for (const t of tools) {
      const [m, h, d, mon, w] = fields(expandSchedule("@yearly", t, "job")).map(Number);
      expect(m).toBeGreaterThanOrEqual(0);
      expect(m).toBeLessThanOrEqual(59);
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThanOrEqual(23);
      // 1-28 so that a @monthly job runs in February too.
      expect(d).toBeGreaterThanOrEqual(1);
      expect(d).toBeLessThanOrEqual(28);
      expect(mon).toBeGreaterThanOrEqual(1);
      expect(mon).toBeLessThanOrEqual(12);
      expect(Number.isNaN(w)).toBe(true); // "*"
      const weekly = fields(expandSchedule("@weekly", t, "job"));
      expect(weekly.slice(2, 4)).toEqual(["*", "*"]);
      expect(Number(weekly[4])).toBeLessThanOrEqual(6);
      expect(fields(expandSchedule("@hourly", t, "job")).slice(1)).toEqual(["*", "*", "*", "*"]);
      expect(() => validateCron(expandSchedule("@monthly", t, "job"))).not.toThrow();
    }
  });

  it("keeps explicit expressions as written, normalised", () => {
    expect(expandSchedule("  */15  2-4 * JAN-mar mon,fri ", "t", "j")).toBe("*/15 2-4 * jan-mar mon,fri");
  });

  it("rejects unknown macros with the list of known ones", () => {
    expect(() => expandSchedule("@reboot", "t", "j")).toThrow(/unknown macro; use one of @hourly, @daily/);
  });
});

describe("validateCron", () => {
  it.each(["* * * * *", "0 0 1 1 0", "59 23 31 12 7", "1,2,5-9/2 */3 1-15 * sun-sat", "0 12 * feb,aug *"])(
    "accepts %s",
    (expr) => {
      expect(validateCron(expr)).toBe(expr);
    },
  );

  it.each([
    ["* * * *", /expected 5 fields .* found 4 fields/],
    ["* * * * * *", /found 6 fields/],
    ["60 * * * *", /minute field: 60 is out of range 0-59/],
    ["* 24 * * *", /hour field: 24 is out of range 0-23/],
    ["* * 0 * *", /day of month field: 0 is out of range 1-31/],
    ["* * * 13 *", /month field: 13 is out of range 1-12/],
    ["* * * * 8", /day of week field: 8 is out of range 0-7/],
    ["*/0 * * * *", /step "0" must be a number from 1 to 59/],
    ["5-1 * * * *", /range 5-1 runs backwards/],
    ["a * * * *", /minute field: "a" is not a number/],
    ["* * * foo *", /month field: "foo" is not a number or a name/],
    ["1,,2 * * * *", /empty list item/],
    ["TZ=UTC 0 0 * *", /minute field/],
  ])("rejects %s", (expr, message) => {
    expect(() => validateCron(expr)).toThrow(InputError);
    expect(() => validateCron(expr)).toThrow(message);
  });

  it("names the schedule and the field in the error details", () => {
    try {
      validateCron("61 * * * *");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).message).toContain('invalid schedule "61 * * * *"');
      expect((error as InputError).details).toEqual({ field: "schedule" });
    }
  });
});
