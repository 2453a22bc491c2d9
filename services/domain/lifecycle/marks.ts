import { z } from "zod";
import type { ErrorCode, SlipwayError } from "../../platform/errors.js";

/**
 * What slipway-lifecycle tells whoever follows its output (the local executor, the Tekton backend
 * reading a pod's log) besides the log itself: which buildpack is building, and why the step failed.
 * A step's output is the one channel both have (a failed TaskRun reports no results, and an OOM kill
 * leaves no chance to write anything else), so these are lines of their own, marked, kept out of the
 * build log. The lifecycle relays buildpack output through `escapeOutput`, so no relayed line reads
 * as a mark. (A buildpack that wrote to the step's output around the lifecycle, through /proc, could
 * at most misstate why its own tool's build failed: marks carry no rights, only the reason's words.)
 */
export const MARK = "::slipway:: ";

/**
 * Codes a step may report: its own failures, never what only Slipway decides (auth, quotas, and
 * `cancelled`: a build is cancelled by its run, not by a step saying so).
 */
const CODES = [
  "invalid_input",
  "detect_failed",
  "build_failed",
  "export_failed",
  "internal",
] as const satisfies readonly ErrorCode[];

const LIMIT = z.union([
  z.object({ kind: z.literal("memory"), limitMb: z.number() }),
  z.object({ kind: z.literal("pids"), limit: z.number() }),
]);

const FAILURE = z.object({
  code: z.enum(CODES),
  message: z.string().max(8192),
  phase: z.enum(["detect", "restore", "build", "export"]).optional(),
  buildpack: z.string().max(256).optional(),
  exit_code: z.number().int().optional(),
  limit: LIMIT.optional(),
  log_tail: z.array(z.string().max(2048)).max(100).optional(),
});

const MARKED = z.union([z.object({ buildpack: z.string().min(1).max(256) }), z.object({ failure: FAILURE })]);

export type StepFailure = z.infer<typeof FAILURE>;
export type Mark = z.infer<typeof MARKED>;

/** A line of buildpack (or any relayed) output that would read as a mark is shown with a space before it. */
export function escapeOutput(line: string): string {
  return line.startsWith(MARK.trimEnd()) ? ` ${line}` : line;
}

export function buildpackMark(id: string): string {
  return `${MARK}${JSON.stringify({ buildpack: id })}`;
}

/** The failure as the step reports it: its code, message and what the build record shows of it. */
export function failureMark(error: SlipwayError): string {
  const details = error.details ?? {};
  const failure: StepFailure = {
    code: (CODES as readonly string[]).includes(error.code)
      ? (error.code as StepFailure["code"])
      : "internal",
    message: error.message.slice(0, 8192),
  };
  if (typeof details.phase === "string" && FAILURE.shape.phase.safeParse(details.phase).success)
    failure.phase = details.phase as StepFailure["phase"];
  if (typeof details.buildpack === "string") failure.buildpack = details.buildpack.slice(0, 256);
  if (typeof details.exit_code === "number" && Number.isInteger(details.exit_code))
    failure.exit_code = details.exit_code;
  const limit = LIMIT.safeParse(details.limit);
  if (limit.success) failure.limit = limit.data;
  if (Array.isArray(details.log_tail))
    failure.log_tail = details.log_tail
      .filter((l): l is string => typeof l === "string")
      .slice(-100)
      .map((l) => l.slice(0, 2048));
  return `${MARK}${JSON.stringify({ failure })}`;
}

/** The mark a line is, or undefined for a line of the log (a malformed mark is shown, not trusted). */
export function readMark(line: string): Mark | undefined {
  if (!line.startsWith(MARK)) return undefined;
  try {
    const parsed = MARKED.safeParse(JSON.parse(line.slice(MARK.length)));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
