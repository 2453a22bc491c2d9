import { createHash } from "node:crypto";
import { InputError } from "../../platform/errors.js";

interface CronField {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: Readonly<Record<string, number>>;
}

const FIELDS: readonly CronField[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  {
    name: "month",
    min: 1,
    max: 12,
    names: {
      jan: 1,
      feb: 2,
      mar: 3,
      apr: 4,
      may: 5,
      jun: 6,
      jul: 7,
      aug: 8,
      sep: 9,
      oct: 10,
      nov: 11,
      dec: 12,
    },
  },
  // 7 is Sunday too, as in Vixie cron and Kubernetes.
  { name: "day of week", min: 0, max: 7, names: { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 } },
];

/**
 * The macros Slipway accepts, as templates: `M` minute, `H` hour, `D` day of month, `N` month, `W` day
 * of week are filled in from the tool and job name. Days of month are drawn from 1-28 so a @monthly job
 * runs in every month (Toolforge draws from 1-31 and so skips short months).
 */
const MACROS: Readonly<Record<string, string>> = {
  "@hourly": "M * * * *",
  "@daily": "M H * * *",
  "@weekly": "M H * * W",
  "@monthly": "M H D * *",
  "@yearly": "M H D N *",
  "@annually": "M H D N *",
};

function scheduleError(schedule: string, problem: string): InputError {
  return new InputError(`invalid schedule "${schedule.slice(0, 100)}": ${problem}`, {
    details: { field: "schedule" },
  });
}

function value(schedule: string, field: CronField, text: string): number {
  const named = field.names?.[text];
  if (named !== undefined) return named;
  if (!/^[0-9]+$/.test(text)) {
    throw scheduleError(
      schedule,
      `${field.name} field: "${text}" is not a number${field.names ? " or a name" : ""}`,
    );
  }
  const n = Number(text);
  if (n < field.min || n > field.max) {
    throw scheduleError(schedule, `${field.name} field: ${n} is out of range ${field.min}-${field.max}`);
  }
  return n;
}

function checkField(schedule: string, field: CronField, text: string): void {
  for (const item of text.split(",")) {
    if (item === "") throw scheduleError(schedule, `${field.name} field: empty list item in "${text}"`);
    const [range = "", step, extra] = item.split("/");
    if (extra !== undefined)
      throw scheduleError(schedule, `${field.name} field: more than one '/' in "${item}"`);
    if (step !== undefined) {
      if (!/^[0-9]+$/.test(step) || Number(step) < 1 || Number(step) > field.max) {
        throw scheduleError(
          schedule,
          `${field.name} field: step "${step}" must be a number from 1 to ${field.max}`,
        );
      }
    }
    if (range === "*") continue;
    const [from = "", to, more] = range.split("-");
    if (more !== undefined)
      throw scheduleError(schedule, `${field.name} field: more than one '-' in "${item}"`);
    const start = value(schedule, field, from);
    if (to !== undefined) {
      const end = value(schedule, field, to);
      if (start > end)
        throw scheduleError(schedule, `${field.name} field: range ${from}-${to} runs backwards`);
    }
  }
}

/**
 * Validates a 5-field cron expression (minute hour day-of-month month day-of-week; `*`, lists, ranges,
 * steps, month and weekday names) and returns it normalised: lowercase, single spaces. Throws
 * InputError naming the field at fault.
 */
export function validateCron(schedule: string): string {
  const fields = schedule.trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (fields.length !== 5) {
    throw scheduleError(
      schedule,
      `expected 5 fields (minute hour day-of-month month day-of-week) or one of ${Object.keys(MACROS).join(", ")}, found ${fields.length} field${fields.length === 1 ? "" : "s"}`,
    );
  }
  fields.forEach((text, i) => checkField(schedule, FIELDS[i]!, text));
  return fields.join(" ");
}

/**
 * Turns a schedule into the 5-field expression a CronJob gets. Macros are spread: `@daily` becomes
 * `<m> <h> * * *` with minute and hour drawn from the SHA-256 of `<tool>/<job>`, so the same job
 * always gets the same time (re-rendering changes nothing) while thousands of tools' daily jobs do
 * not all start at midnight. Anything else must be a valid 5-field expression and is kept as written.
 */
export function expandSchedule(schedule: string, tool: string, job: string): string {
  const text = schedule.trim().toLowerCase();
  if (!text.startsWith("@")) return validateCron(schedule);
  const template = MACROS[text];
  if (template === undefined) {
    throw scheduleError(
      schedule,
      `unknown macro; use one of ${Object.keys(MACROS).join(", ")} or 5 cron fields`,
    );
  }
  const seed = createHash("sha256").update(`${tool}/${job}`).digest();
  // Independent 32-bit words of the digest for each field; modulo bias is irrelevant at these ranges.
  const pick = (word: number, size: number, offset: number) => (seed.readUInt32BE(word * 4) % size) + offset;
  const draws: Readonly<Record<string, number>> = {
    M: pick(0, 60, 0),
    H: pick(1, 24, 0),
    D: pick(2, 28, 1),
    N: pick(3, 12, 1),
    W: pick(4, 7, 0),
  };
  return template
    .split(" ")
    .map((f) => (f in draws ? String(draws[f]) : f))
    .join(" ");
}

/** The values each field allows, as sets; `restricted` tells `*` from an explicit list (cron's day rule). */
interface CronSets {
  readonly minute: ReadonlySet<number>;
  readonly hour: ReadonlySet<number>;
  readonly dom: ReadonlySet<number>;
  readonly month: ReadonlySet<number>;
  readonly dow: ReadonlySet<number>;
  readonly domRestricted: boolean;
  readonly dowRestricted: boolean;
}

function expandField(field: CronField, text: string): Set<number> {
  const out = new Set<number>();
  for (const item of text.split(",")) {
    const [range = "", stepText] = item.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    let from = field.min;
    let to = field.max;
    if (range !== "*") {
      const [a = "", b] = range.split("-");
      from = field.names?.[a] ?? Number(a);
      // `5/15` means 5-max stepping by 15, as in Vixie cron.
      to = b !== undefined ? (field.names?.[b] ?? Number(b)) : stepText !== undefined ? field.max : from;
    }
    for (let v = from; v <= to; v += step) out.add(v);
  }
  return out;
}

function cronSets(expression: string): CronSets {
  const fields = validateCron(expression).split(" ");
  const sets = fields.map((text, i) => expandField(FIELDS[i]!, text));
  const dow = sets[4]!;
  if (dow.has(7)) dow.add(0);
  return {
    minute: sets[0]!,
    hour: sets[1]!,
    dom: sets[2]!,
    month: sets[3]!,
    dow,
    domRestricted: !fields[2]!.startsWith("*"),
    dowRestricted: !fields[4]!.startsWith("*"),
  };
}

function dayMatches(s: CronSets, d: Date): boolean {
  const dom = s.dom.has(d.getUTCDate());
  const dow = s.dow.has(d.getUTCDay());
  // Vixie cron: when both day fields are restricted, either one matching is enough.
  if (s.domRestricted && s.dowRestricted) return dom || dow;
  if (s.domRestricted) return dom;
  if (s.dowRestricted) return dow;
  return true;
}

/**
 * The first time strictly after `after` that a 5-field expression (already expanded: no macros) matches,
 * in UTC, at whole minutes. Walks months, days, hours and minutes rather than every minute, so even a
 * yearly schedule costs a few hundred steps. Throws InputError for an expression that never matches
 * (e.g. `0 0 31 2 *`) after searching five years.
 */
export function nextRun(expression: string, after: Date): Date {
  const s = cronSets(expression);
  const t = new Date(after.getTime());
  t.setUTCSeconds(0, 0);
  t.setUTCMinutes(t.getUTCMinutes() + 1);
  const limit = after.getTime() + 5 * 366 * 24 * 3600 * 1000;
  while (t.getTime() <= limit) {
    if (!s.month.has(t.getUTCMonth() + 1)) {
      t.setUTCMonth(t.getUTCMonth() + 1, 1);
      t.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!dayMatches(s, t)) {
      t.setUTCDate(t.getUTCDate() + 1);
      t.setUTCHours(0, 0, 0, 0);
      continue;
    }
    if (!s.hour.has(t.getUTCHours())) {
      t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
      continue;
    }
    if (!s.minute.has(t.getUTCMinutes())) {
      t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
      continue;
    }
    return t;
  }
  throw scheduleError(expression, "it never matches a date (check day of month against month)");
}
