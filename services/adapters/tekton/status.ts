import type { KubernetesObject } from "@kubernetes/client-node";
import type { BuildPhase, BuiltImage } from "../../ports/build-backend.js";
import { PipelineError, SlipwayError, type ErrorCode } from "../../platform/errors.js";
import type { StepOutput } from "./step-output.js";

/** The parts of Tekton's `status` (tekton.dev/v1) the backend reads. */
interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}

interface StepState {
  readonly name: string;
  readonly container?: string;
  readonly running?: { readonly startedAt?: string };
  readonly terminated?: {
    readonly exitCode: number;
    readonly reason?: string;
    readonly startedAt?: string;
    readonly finishedAt?: string;
  };
}

export interface TaskRunState extends KubernetesObject {
  readonly status?: {
    readonly conditions?: readonly Condition[];
    readonly podName?: string;
    readonly steps?: readonly StepState[];
    readonly results?: readonly { readonly name: string; readonly value: unknown }[];
  };
}

export interface PipelineRunState extends KubernetesObject {
  readonly status?: {
    readonly conditions?: readonly Condition[];
    readonly results?: readonly { readonly name: string; readonly value: unknown }[];
  };
}

/** The build phase a Task's step is: fetch is the pipeline's own phase, so it reports none. */
export function stepPhase(pipelineTask: string, step: string): BuildPhase | undefined {
  if (pipelineTask === "export") return "export";
  if (pipelineTask !== "build") return undefined;
  if (step === "detect" || step === "restore") return step;
  return "build";
}

const PHASE_OF_TASK: Record<string, string> = { fetch: "fetch", export: "export" };

function phaseOf(task: string, step: string | undefined): string {
  return PHASE_OF_TASK[task] ?? (step ? (stepPhase(task, step) ?? "build") : "build");
}

const CODE_OF_PHASE: Record<string, ErrorCode> = {
  fetch: "source_fetch_failed",
  detect: "detect_failed",
  export: "export_failed",
};

function succeeded(o: { status?: { conditions?: readonly Condition[] } }): Condition | undefined {
  return o.status?.conditions?.find((c) => c.type === "Succeeded");
}

function result(o: PipelineRunState, name: string): string | undefined {
  const value = o.status?.results?.find((r) => r.name === name)?.value;
  return typeof value === "string" ? value.trim() : undefined;
}

/** A run that succeeded: its results, and how long each phase's steps ran. */
export function mapSuccess(run: PipelineRunState, taskRuns: readonly TaskRunState[]): BuiltImage {
  const digest = result(run, "image-digest");
  const image = result(run, "image");
  if (!digest || !/^sha256:[0-9a-f]{64}$/.test(digest) || !image) {
    throw new PipelineError(
      "export_failed",
      `the PipelineRun succeeded without an image digest among its results (${JSON.stringify(run.status?.results ?? [])})`,
      { details: { phase: "export" } },
    );
  }
  let processes: BuiltImage["processes"] = [];
  try {
    const parsed = JSON.parse(result(run, "processes") ?? "[]") as unknown;
    if (Array.isArray(parsed))
      processes = parsed.filter(
        (p): p is { type: string; buildpackId: string } =>
          typeof p === "object" && p !== null && typeof (p as { type?: unknown }).type === "string",
      );
  } catch {
    processes = [];
  }
  return { image, digest, processes, phaseTimings: phaseTimings(taskRuns) };
}

/** Milliseconds per phase, from the steps' start and finish times. */
export function phaseTimings(taskRuns: readonly TaskRunState[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const taskRun of taskRuns) {
    const task = taskRun.metadata?.labels?.["tekton.dev/pipelineTask"] ?? "";
    for (const step of taskRun.status?.steps ?? []) {
      const { startedAt, finishedAt } = step.terminated ?? {};
      if (!startedAt || !finishedAt) continue;
      const phase = phaseOf(task, step.name);
      out[phase] = (out[phase] ?? 0) + Math.max(0, Date.parse(finishedAt) - Date.parse(startedAt));
    }
  }
  return out;
}

/**
 * A run that failed, as the error the build ends with: the failing Task and step, its exit code and
 * last lines, out of memory (OOMKilled) or out of time (the run's or a TaskRun's timeout), cancelled.
 * What slipway-lifecycle said of its failure (its failure mark: the code, the message, the buildpack)
 * is the reason, as the podman backend's lifecycle gives it; a step killed before it could say
 * anything is named by the buildpack it was building.
 */
export function mapFailure(
  run: PipelineRunState,
  taskRuns: readonly TaskRunState[],
  outputOf: (task: string, step: string) => StepOutput | undefined,
): SlipwayError {
  const outcome = succeeded(run);
  if (outcome?.reason?.startsWith("Cancelled") || outcome?.reason === "StoppedRunFinally") {
    return new SlipwayError("cancelled", "the build's PipelineRun was cancelled");
  }
  const failed = taskRuns.find((t) => succeeded(t)?.status === "False");
  const task = failed?.metadata?.labels?.["tekton.dev/pipelineTask"] ?? "";
  const step = failed?.status?.steps?.find((s) => s.terminated && s.terminated.exitCode !== 0);
  const output = step ? outputOf(task, step.name) : undefined;
  const said = output?.failure;
  const phase = said?.phase ?? phaseOf(task, step?.name);
  const code = CODE_OF_PHASE[phase] ?? "build_failed";
  const buildpack = said?.buildpack ?? output?.buildpack;
  const details: Record<string, unknown> = { phase, log_tail: said?.log_tail ?? [...(output?.tail ?? [])] };
  if (step) details.step = `${task}/${step.name}`;
  if (buildpack) details.buildpack = buildpack;
  if (outcome?.reason === "PipelineRunTimeout" || succeeded(failed ?? {})?.reason === "TaskRunTimeout") {
    return new PipelineError(
      code,
      `the build ran out of time (${outcome?.message ?? succeeded(failed ?? {})?.message ?? "timeout"})`,
      { details: { ...details, limit: { kind: "time" } } },
    );
  }
  if (step?.terminated?.reason === "OOMKilled") {
    return new PipelineError(code, `${phase} ran out of memory (step ${task}/${step.name} was OOMKilled)`, {
      details: { ...details, exit_code: step.terminated.exitCode, limit: { kind: "memory" } },
    });
  }
  if (step && said) {
    return new PipelineError(said.code === "internal" ? code : said.code, said.message, {
      details: {
        ...details,
        exit_code: said.exit_code ?? step.terminated!.exitCode,
        ...(said.limit ? { limit: said.limit } : {}),
      },
    });
  }
  if (step) {
    return new PipelineError(
      code,
      `step ${task}/${step.name} exited with code ${step.terminated!.exitCode}`,
      {
        details: { ...details, exit_code: step.terminated!.exitCode },
      },
    );
  }
  const why = succeeded(failed ?? {})?.message ?? outcome?.message ?? outcome?.reason ?? "no reason given";
  return new PipelineError(code, `the PipelineRun failed: ${why}`, { details });
}
