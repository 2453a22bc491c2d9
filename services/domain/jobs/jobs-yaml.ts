import { parse as parseYaml, stringify } from "yaml";
import { z } from "zod";
import { InputError } from "../../platform/errors.js";
import { MAX_RETRY, validateJobName, type JobDefinition, type JobType } from "./job.js";

/**
 * What a user gives for one job, through `jobs run` flags, the API, or one item of Toolforge's
 * `jobs.yaml`. `image` is a Toolforge image name (`python3.11`, `tool-x/tool-x:latest`: the tool's live
 * release image) or a Slipway release id (that release's image, pinned).
 */
export interface JobInput {
  readonly name: string;
  readonly command: string;
  readonly image: string | undefined;
  readonly schedule: string | undefined;
  readonly continuous: boolean;
  readonly retry: number;
  readonly timeout: number | undefined;
  readonly mem: string | undefined;
  /** Toolforge keys kept for `dump` but not acted on locally. */
  readonly extra: Readonly<Record<string, unknown>>;
}

/**
 * Keys Toolforge's jobs.yaml has that Slipway accepts and keeps (for `dump`) but does not act on locally;
 * `cpu` is the exception: it is also the job's CPU limit (JobDefinition.cpus).
 */
export const KEPT_TOOLFORGE_KEYS = [
  "cpu",
  "emails",
  "wait",
  "no-filelog",
  "filelog",
  "filelog-stdout",
  "filelog-stderr",
  "mount",
  "port",
  "replicas",
  "health-check-script",
  "health-check-http",
  "publish",
] as const;

const scalar = z.union([z.string(), z.number(), z.boolean()]);

export const jobInputSchema = z
  .object({
    name: z.string().min(1),
    command: z.string().min(1).max(10_000),
    image: z.string().min(1).max(300).optional(),
    schedule: z.string().min(1).max(200).optional(),
    continuous: z.boolean().optional(),
    retry: z.number().int().min(0).max(MAX_RETRY).optional(),
    timeout: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 3600)
      .optional(),
    mem: z.union([z.string(), z.number()]).optional(),
    ...Object.fromEntries(KEPT_TOOLFORGE_KEYS.map((k) => [k, scalar.optional()])),
  })
  .strict();

/** Checks one job given as a plain object (an API body or a jobs.yaml item); `where` prefixes errors. */
export function toJobInput(value: unknown, where = ""): JobInput {
  const parsed = jobInputSchema.safeParse(value);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    const key = i.code === "unrecognized_keys" ? i.keys.join(", ") : i.path.map(String).join(".") || "item";
    const problem =
      i.code === "unrecognized_keys"
        ? `unknown key; known keys are name, command, image, schedule, continuous, retry, timeout, mem, ${KEPT_TOOLFORGE_KEYS.join(", ")}`
        : i.message;
    throw new InputError(`${where}${key}: ${problem}`, { details: { field: key } });
  }
  const d = parsed.data as z.infer<typeof jobInputSchema> & Record<string, unknown>;
  validateJobName(d.name);
  if (d.schedule !== undefined && d.continuous) {
    throw new InputError(`${where}schedule and continuous are mutually exclusive; keep one`, {
      details: { field: "schedule" },
    });
  }
  const extra = Object.fromEntries(
    KEPT_TOOLFORGE_KEYS.filter((k) => d[k] !== undefined).map((k) => [k, d[k]]),
  );
  return {
    name: d.name,
    command: d.command,
    image: d.image,
    schedule: d.schedule,
    continuous: d.continuous ?? false,
    retry: d.retry ?? 0,
    timeout: d.timeout,
    mem: d.mem === undefined ? undefined : String(d.mem),
    extra,
  };
}

/** A checked job back as a plain jobs.yaml item (what the CLI sends to the API's load). */
export function jobInputToItem(input: JobInput): Record<string, unknown> {
  const { extra, continuous, retry, ...rest } = input;
  const item: Record<string, unknown> = Object.fromEntries(
    Object.entries(rest).filter(([, v]) => v !== undefined),
  );
  if (continuous) item.continuous = true;
  if (retry > 0) item.retry = retry;
  return { ...item, ...extra };
}

export function jobTypeOf(input: Pick<JobInput, "schedule" | "continuous">): JobType {
  return input.schedule !== undefined ? "scheduled" : input.continuous ? "continuous" : "one-off";
}

/** Parses Toolforge's `jobs.yaml`: a list of jobs, names unique. Errors name the item. */
export function parseJobsYaml(text: string): JobInput[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new InputError(`jobs.yaml is not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return [];
  if (!Array.isArray(doc)) {
    throw new InputError("jobs.yaml must be a list of jobs (each item: name, command, image, …)");
  }
  return checkJobList(doc);
}

/** Checks a list of jobs (a parsed jobs.yaml, or the API's `load` body). */
export function checkJobList(items: readonly unknown[]): JobInput[] {
  const seen = new Set<string>();
  return items.map((item, i) => {
    const where =
      item && typeof item === "object" && typeof (item as { name?: unknown }).name === "string"
        ? `job ${i + 1} (${(item as { name: string }).name}): `
        : `job ${i + 1}: `;
    const input = toJobInput(item, where);
    if (seen.has(input.name)) throw new InputError(`${where}the name ${input.name} is used twice`);
    seen.add(input.name);
    return input;
  });
}

/** A definition as a jobs.yaml item, in Toolforge's key order; what `load` of the output recreates. */
export function toJobsYamlItem(job: JobDefinition): Record<string, unknown> {
  const item: Record<string, unknown> = { name: job.name, command: job.command };
  if (job.image_name !== undefined) item.image = job.image_name;
  if (job.type === "scheduled" && job.schedule !== undefined) item.schedule = job.schedule;
  if (job.type === "continuous") item.continuous = true;
  if (job.retry > 0) item.retry = job.retry;
  if (job.timeout_s !== undefined) item.timeout = job.timeout_s;
  if (job.memory_mb !== undefined) item.mem = `${job.memory_mb}Mi`;
  return { ...item, ...job.extra };
}

export function dumpJobsYaml(jobs: readonly JobDefinition[]): string {
  if (jobs.length === 0) return "[]\n";
  return stringify(jobs.map(toJobsYamlItem));
}
