import { z } from "zod";

/**
 * The zod schema of `slipway.yaml`, a superset of Toolforge's `toolforge.yaml` (ToolConfig, `config_version:
 * v1beta1`). Structure, types and formats are checked by the schema itself; rules that involve several
 * fields (component type vs. run fields, `reuse_from` targets) are refinements that run even when other
 * fields already failed, so that one parse reports every problem at once. The refinements therefore read
 * their input defensively: it may be anything the YAML held.
 */

export const COMPONENT_TYPES = ["continuous", "scheduled", "one-off"] as const;
export type ComponentType = (typeof COMPONENT_TYPES)[number];

export const DEFAULT_CPU = "100m";
export const DEFAULT_MEMORY = "512Mi";
/** A handful, as Toolforge's quotas allow; more copies of one tool would crowd a small machine out. */
export const MAX_REPLICAS = 8;
export const MAX_COMPONENT_NAME = 52;
export const SCHEDULE_MACROS = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"] as const;

const COMPONENT_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const CPU = /^(?:[1-9]\d*m|\d+(?:\.\d+)?)$/;
const MEMORY = /^\d+(?:\.\d+)?(?:Ki|Mi|Gi|Ti|k|M|G|T)$/;
const REPOSITORY = /^(?:https?|git):\/\/[^\s]+$/;
// What git accepts in a ref name, loosely: no whitespace, no control or special characters, no "..".
const GIT_REF = /^(?!.*\.\.)[^\s~^:?*[\\\p{Cc}]+$/u;

/** Runs a refinement even when the value already has type errors (see the module comment). */
const always = { when: () => true };

/** An error message naming what was expected and what the file held (or that the field is missing). */
const expected =
  (what: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined
      ? "this field is required"
      : `expected ${what}, got ${describeValue(issue.input)}`;

const str = (what: string) => z.string({ error: expected(what) }).min(1, { error: expected(what) });

const componentName = z
  .string()
  .max(MAX_COMPONENT_NAME, {
    error: `component names have at most ${MAX_COMPONENT_NAME} characters`,
  })
  .regex(COMPONENT_NAME, {
    error:
      "component names are RFC 1123 labels: lowercase letters, digits and '-', starting and ending with a letter or digit",
  });

const globList = z.array(str("a glob pattern such as main, release/* or v*"), {
  error: expected("a list of glob patterns, e.g. [main] or ['v*']"),
});

export const deploySchema = z
  .strictObject({
    branches: globList
      .optional()
      .describe(
        "Branches whose pushes deploy (globs: * within a segment, ** across, ? one character). Omitted: the repository's default branch; []: no branch.",
      ),
    tags: globList.default([]).describe("Tags whose pushes deploy (globs). Omitted or []: no tag."),
  })
  .describe("Slipway's deploy policy: which pushed refs build and deploy.");

export const buildSchema = z
  .strictObject({
    repository: z
      .string()
      .regex(REPOSITORY, { error: expected("an http(s):// or git:// URL of a public git repository") })
      .optional()
      .describe("Build another public repository instead of this one."),
    ref: z
      .string()
      .min(1)
      .regex(GIT_REF, { error: expected("a git ref: a branch, a tag, refs/tags/<tag> or a commit id") })
      .optional()
      .describe("Branch, tag, refs/… or commit of `repository` (default: its default branch)."),
    use_latest_versions: z
      .boolean({ error: expected("true or false") })
      .optional()
      .describe("Use the newest buildpack versions."),
    use_deprecated_versions: z
      .boolean({ error: expected("true or false") })
      .optional()
      .describe("Allow deprecated language versions."),
    reuse_from: componentName
      .optional()
      .describe("Run the image built for this other component (which must itself be built from source)."),
  })
  .describe(
    "Where the image comes from: a repository and ref, or `reuse_from` another component. Omitted: this repository at the pushed commit.",
  );

const port = z
  .int({ error: expected("a number from 1 to 65535") })
  .min(1, { error: expected("a number from 1 to 65535") })
  .max(65535, { error: expected("a number from 1 to 65535") });

export const runSchema = z
  .strictObject({
    command: str("a command (a Procfile process type such as web, or a command line)").describe(
      "Procfile process type or command line to run.",
    ),
    cpu: z
      .union([z.string(), z.number()], { error: expected('a CPU quantity such as "500m" or "1"') })
      // Optional rather than defaulted here: the parser fills the default in and remembers that the file
      // said nothing, which the local profile treats differently (SLIPWAY_RUN_CPUS, see parse.ts).
      .optional()
      .check(
        z.refine((v) => CPU.test(String(v)) && Number.parseFloat(String(v)) > 0, {
          error: expected('a CPU quantity such as "500m" or "1"'),
        }),
      )
      .meta({ default: DEFAULT_CPU, description: `CPU limit, e.g. "500m" or "1" (default ${DEFAULT_CPU}).` }),
    memory: z
      .string({ error: expected("a memory quantity such as 256Mi or 1Gi") })
      .regex(MEMORY, { error: expected("a memory quantity such as 256Mi or 1Gi") })
      .default(DEFAULT_MEMORY)
      .describe(`Memory limit, e.g. 256Mi or 1Gi (default ${DEFAULT_MEMORY}).`),
    emails: z
      .enum(["none", "all", "onfinish", "onfailure"])
      .optional()
      .describe("Job e-mails (default none)."),
    filelog: z
      .boolean({ error: expected("true or false") })
      .optional()
      .describe("Write logs to files."),
    filelog_stdout: str("a file path").optional().describe("File for stdout when filelog is on."),
    filelog_stderr: str("a file path").optional().describe("File for stderr when filelog is on."),
    mount: z.enum(["none", "all"]).optional().describe("Mount the shared tool storage (default none)."),
    port: port.optional().describe("Port the process listens on (continuous only)."),
    port_protocol: z.enum(["tcp", "udp"]).optional().describe("Protocol of `port` (default tcp)."),
    publish: z
      .union([z.boolean(), z.string().regex(/^\//)], {
        error: expected('a URL path starting with "/" (or true for "/")'),
      })
      .optional()
      .describe('Serve `port` to the internet at this path, e.g. "/" (continuous only, tcp port).'),
    replicas: z
      .int({ error: expected(`a whole number from 1 to ${MAX_REPLICAS}`) })
      .min(1, { error: expected(`a whole number from 1 to ${MAX_REPLICAS}`) })
      .max(MAX_REPLICAS, { error: expected(`a whole number from 1 to ${MAX_REPLICAS}`) })
      .optional()
      .describe(`Copies to run (continuous only, default 1, at most ${MAX_REPLICAS}).`),
    schedule: z
      .string({ error: expected("a cron schedule such as '13 2 * * *' or @daily") })
      .check(
        z.refine((v) => cronProblem(v) === undefined, {
          error: (iss) => cronProblem(String(iss.input)) ?? "invalid schedule",
        }),
      )
      .optional()
      .meta({
        description:
          "Cron schedule, five fields or @hourly/@daily/@weekly/@monthly/@yearly (scheduled only).",
        examples: ["13 2 * * *", "*/10 * * * *", "@daily"],
      }),
    retry: z
      .int({ error: expected("a number from 0 to 5") })
      .min(0, { error: expected("a number from 0 to 5") })
      .max(5, { error: expected("a number from 0 to 5") })
      .optional()
      .describe("Retries of a failed run, 0-5 (scheduled and one-off, default 0)."),
    timeout: z
      .int({ error: expected("a number of seconds of at least 1") })
      .min(1, { error: expected("a number of seconds of at least 1") })
      .optional()
      .describe("Seconds a run may take (scheduled and one-off)."),
    health_check_http: z
      .string()
      .regex(/^\//, { error: expected('a URL path starting with "/", e.g. /healthz') })
      .optional()
      .describe("HTTP path that answers 2xx when healthy (continuous only, needs a tcp port)."),
    health_check_script: str("a command")
      .optional()
      .describe("Command that exits 0 when healthy (continuous only)."),
  })
  .describe("How the component runs.");

const CONTINUOUS_ONLY = [
  "port",
  "port_protocol",
  "publish",
  "replicas",
  "health_check_http",
  "health_check_script",
] as const;
const JOB_ONLY = ["retry", "timeout"] as const;

export const componentSchema = z
  .strictObject({
    component_type: z
      .enum(COMPONENT_TYPES)
      .optional()
      .describe(
        "continuous, scheduled or one-off. Omitted: scheduled if run.schedule is set, else continuous.",
      ),
    build: buildSchema.optional(),
    run: runSchema,
  })
  .superRefine((value, ctx) => checkComponent(value, ctx), always);

export const componentsConfigSchema = z
  .strictObject({
    config_version: z.literal("v1beta1").optional().describe("Toolforge's config version; only v1beta1."),
    source_url: z
      .url({ error: expected("a URL") })
      .optional()
      .describe(
        "Toolforge: where the config is re-fetched from. Accepted for compatibility; Slipway ignores it.",
      ),
    components: z
      .record(componentName, componentSchema, { error: expected("a map of component names to components") })
      .check(z.refine((m) => Object.keys(m).length > 0, { error: "expected at least one component" }))
      .meta({
        description: "The tool's components by name (the name becomes the job and image name).",
        minProperties: 1,
      }),
    deploy: deploySchema.optional(),
  })
  .superRefine((value, ctx) => checkReuse(value, ctx), always)
  .meta({
    title: "slipway.yaml",
    description:
      "Slipway components config. Accepts Toolforge's toolforge.yaml unchanged; adds one-off components and a deploy policy.",
  });

/** What the schema yields before defaults that depend on the component type are applied (see parse.ts). */
export type RawComponentsConfig = z.output<typeof componentsConfigSchema>;
export type RawComponent = z.output<typeof componentSchema>;

type Ctx = z.RefinementCtx;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The component's type: explicit, or inferred as Toolforge does (a schedule makes it scheduled). */
export function effectiveType(component: unknown): ComponentType | undefined {
  if (!isRecord(component)) return undefined;
  const t = component.component_type;
  if (t === undefined) {
    const run = component.run;
    return isRecord(run) && run.schedule !== undefined ? "scheduled" : "continuous";
  }
  return (COMPONENT_TYPES as readonly unknown[]).includes(t) ? (t as ComponentType) : undefined;
}

function checkComponent(component: unknown, ctx: Ctx): void {
  if (!isRecord(component)) return;
  const run = isRecord(component.run) ? component.run : undefined;
  const build = isRecord(component.build) ? component.build : undefined;
  const type = effectiveType(component);

  if (build && build.reuse_from !== undefined) {
    for (const key of ["repository", "ref", "use_latest_versions", "use_deprecated_versions"]) {
      if (build[key] !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["build", key],
          message: `build.${key} cannot be combined with build.reuse_from: a reused image is built as its original component says`,
        });
      }
    }
  } else if (build && build.ref !== undefined && build.repository === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["build", "ref"],
      message:
        "build.ref needs build.repository; without a repository, this repository is built at the pushed commit",
    });
  }

  if (!run || type === undefined) return;
  const typeName =
    component.component_type !== undefined
      ? type
      : type === "scheduled"
        ? "scheduled (inferred from run.schedule)"
        : "continuous (the default without run.schedule)";

  if (type === "scheduled" && run.schedule === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["run", "schedule"],
      message: "scheduled components need run.schedule, e.g. '13 2 * * *' or @daily",
    });
  }
  if (type !== "scheduled" && run.schedule !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["run", "schedule"],
      message: `schedule is only for scheduled components; this one is ${type} (set component_type: scheduled)`,
    });
  }
  if (type !== "continuous") {
    for (const key of CONTINUOUS_ONLY) {
      if (run[key] !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["run", key],
          message: `${key} is only for continuous components; this one is ${typeName}`,
        });
      }
    }
    return;
  }
  for (const key of JOB_ONLY) {
    if (run[key] !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["run", key],
        message: `${key} is only for scheduled and one-off components; this one is ${typeName}`,
      });
    }
  }
  if (run.health_check_http !== undefined && run.health_check_script !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["run", "health_check_script"],
      message: "health_check_http and health_check_script are mutually exclusive; keep one",
    });
  }
  const tcpPort = run.port !== undefined && (run.port_protocol === undefined || run.port_protocol === "tcp");
  for (const key of ["health_check_http", "publish"] as const) {
    if (run[key] !== undefined && run[key] !== false && !tcpPort) {
      ctx.addIssue({
        code: "custom",
        path: ["run", key],
        message:
          run.port === undefined
            ? `${key} needs a tcp port: set run.port to the port the process listens on`
            : `${key} needs a tcp port, but run.port_protocol is ${String(run.port_protocol)}`,
      });
    }
  }
}

function checkReuse(config: unknown, ctx: Ctx): void {
  if (!isRecord(config) || !isRecord(config.components)) return;
  const components = config.components;
  const names = Object.keys(components);
  const reuseOf = (name: string): unknown => {
    const c = components[name];
    return isRecord(c) && isRecord(c.build) ? c.build.reuse_from : undefined;
  };
  for (const name of names) {
    const target = reuseOf(name);
    if (typeof target !== "string") continue;
    const path = ["components", name, "build", "reuse_from"];
    if (target === name) {
      ctx.addIssue({ code: "custom", path, message: `component "${name}" cannot reuse its own image` });
    } else if (!Object.hasOwn(components, target)) {
      const hint = closest(target, names);
      ctx.addIssue({
        code: "custom",
        path,
        message: `no component named "${target}"${hint ? `; did you mean "${hint}"?` : ""}`,
      });
    } else {
      const next = reuseOf(target);
      if (next !== undefined) {
        ctx.addIssue({
          code: "custom",
          path,
          message: `"${target}" itself reuses ${typeof next === "string" ? `"${next}"` : "another image"}; reuse_from must name a component built from source (no chains)`,
        });
      }
    }
  }
}

function cronProblem(schedule: string): string | undefined {
  const s = schedule.trim();
  if (s.startsWith("@")) {
    return (SCHEDULE_MACROS as readonly string[]).includes(s)
      ? undefined
      : `unknown schedule macro ${JSON.stringify(s)}; use one of ${SCHEDULE_MACROS.join(", ")}`;
  }
  const fields = s.split(/\s+/);
  if (fields.length !== 5) {
    return `expected a cron schedule of 5 fields (minute hour day-of-month month day-of-week) or @daily etc., got ${JSON.stringify(schedule)}`;
  }
  const spec: [string, number, number, readonly string[]][] = [
    ["minute", 0, 59, []],
    ["hour", 0, 23, []],
    ["day-of-month", 1, 31, []],
    ["month", 1, 12, ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]],
    ["day-of-week", 0, 7, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]],
  ];
  for (let i = 0; i < 5; i++) {
    const [what, min, max, names] = spec[i]!;
    if (!cronFieldOk(fields[i]!, min, max, names)) {
      return `cron ${what} field ${JSON.stringify(fields[i])} is not valid (expected *, numbers ${min}-${max}, ranges a-b, lists a,b and steps */n)`;
    }
  }
  return undefined;
}

function cronFieldOk(field: string, min: number, max: number, names: readonly string[]): boolean {
  const value = (v: string): number | undefined => {
    const byName = names.indexOf(v.toLowerCase());
    if (byName >= 0) return byName + (min === 1 ? 1 : 0);
    if (!/^\d+$/.test(v)) return undefined;
    const n = Number(v);
    return n >= min && n <= max ? n : undefined;
  };
  return field.split(",").every((part) => {
    const [range, step, extra] = part.split("/");
    if (extra !== undefined || range === undefined) return false;
    if (step !== undefined && !(/^\d+$/.test(step) && Number(step) >= 1)) return false;
    if (range === "*") return true;
    const bounds = range.split("-");
    if (bounds.length > 2) return false;
    const nums = bounds.map(value);
    if (nums.some((n) => n === undefined)) return false;
    return nums.length === 1 || nums[0]! <= nums[1]!;
  });
}

/** A short, quoted rendering of a user's value for error messages. */
export function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null (an empty value)";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a map";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return typeof v === "number" || typeof v === "boolean" || typeof v === "bigint" ? String(v) : typeof v;
}

/** The closest candidate by edit distance (ignoring case and '-' vs '_'), if it is close enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/-/g, "_");
  const w = norm(word);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = levenshtein(w, norm(c));
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  if (bestDistance <= limit) return best;
  // Abbreviations, e.g. Toolforge jobs.yaml's `mem` for `memory`.
  return w.length >= 3 ? candidates.find((c) => norm(c).startsWith(w)) : undefined;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
