import { z } from "zod";
import { InputError } from "../../platform/errors.js";
import type { PipelineFileObject } from "../tekton/pipelines-dir.js";
import { references, type VariableScope } from "./variables.js";

/**
 * The part of tekton.dev/v1 that Slipway's `pipelines/` uses, and so the part the local executor runs.
 * Every object is a strict schema: a field outside it (a sidecar, a `when`, an array param, a step's
 * `valueFrom`) is refused by name when the definitions are read, instead of being ignored locally
 * while a cluster honours it. Widening this subset is a change here, with a test.
 */
const unsupported = (what: string) => ({ error: `${what} (the local executor runs only that)` });

const Param = z.strictObject({
  name: z.string().min(1),
  type: z.literal("string", unsupported('only type "string" is supported')).optional(),
  default: z.string().optional(),
  description: z.string().optional(),
});

const EnvVar = z.strictObject({ name: z.string().min(1), value: z.string() });

const Resources = z.strictObject({
  limits: z.strictObject({ memory: z.string().optional(), cpu: z.string().optional() }).optional(),
  // Requests are a scheduler's business: accepted, and meaningless on one machine.
  requests: z.strictObject({ memory: z.string().optional(), cpu: z.string().optional() }).optional(),
});

/** The hardening every local container has anyway (confinement.ts); a step may ask for it, not less. */
const SecurityContext = z.strictObject({
  runAsNonRoot: z.boolean().optional(),
  runAsUser: z.number().int().min(0).optional(),
  runAsGroup: z.number().int().min(0).optional(),
  allowPrivilegeEscalation: z.literal(false, unsupported("only false is supported")).optional(),
  privileged: z.literal(false, unsupported("only false is supported")).optional(),
  readOnlyRootFilesystem: z.boolean().optional(),
  capabilities: z
    .strictObject({
      drop: z
        .array(z.string())
        .refine((d) => d.includes("ALL"), unsupported('drop must include "ALL"'))
        .optional(),
    })
    .optional(),
  seccompProfile: z
    .strictObject({ type: z.literal("RuntimeDefault", unsupported('only "RuntimeDefault" is supported')) })
    .optional(),
});

const Step = z.strictObject({
  name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { error: "a DNS label" }),
  image: z.string().min(1),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
  script: z.string().optional(),
  env: z.array(EnvVar).optional(),
  workingDir: z.string().optional(),
  computeResources: Resources.optional(),
  securityContext: SecurityContext.optional(),
});

const StepTemplate = z.strictObject({
  env: z.array(EnvVar).optional(),
  securityContext: SecurityContext.optional(),
  computeResources: Resources.optional(),
});

const Metadata = z.looseObject({ name: z.string().min(1) });

/** A workspace as a Pipeline declares it; a Task's may also be read-only and mounted elsewhere. */
const PipelineWorkspace = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  optional: z.boolean().optional(),
});

const TaskSchema = z.strictObject({
  apiVersion: z.literal("tekton.dev/v1"),
  kind: z.literal("Task"),
  metadata: Metadata,
  spec: z.strictObject({
    description: z.string().optional(),
    params: z.array(Param).optional(),
    workspaces: z
      .array(
        PipelineWorkspace.extend({
          readOnly: z.boolean().optional(),
          mountPath: z.string().startsWith("/").optional(),
        }),
      )
      .optional(),
    results: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          type: z.literal("string", unsupported('only type "string" is supported')).optional(),
          description: z.string().optional(),
        }),
      )
      .optional(),
    stepTemplate: StepTemplate.optional(),
    steps: z.array(Step).min(1),
  }),
});

const PipelineSchema = z.strictObject({
  apiVersion: z.literal("tekton.dev/v1"),
  kind: z.literal("Pipeline"),
  metadata: Metadata,
  spec: z.strictObject({
    description: z.string().optional(),
    params: z.array(Param).optional(),
    workspaces: z.array(PipelineWorkspace).optional(),
    results: z
      .array(
        z.strictObject({ name: z.string().min(1), value: z.string(), description: z.string().optional() }),
      )
      .optional(),
    tasks: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          taskRef: z.strictObject({ name: z.string().min(1) }),
          params: z.array(z.strictObject({ name: z.string().min(1), value: z.string() })).optional(),
          workspaces: z
            .array(z.strictObject({ name: z.string().min(1), workspace: z.string().min(1) }))
            .optional(),
          runAfter: z.array(z.string()).optional(),
        }),
      )
      .min(1),
  }),
});

export type TaskSpec = z.infer<typeof TaskSchema>["spec"];
export type StepSpec = z.infer<typeof Step>;
export type SecurityContextSpec = z.infer<typeof SecurityContext>;
export type PipelineSpec = z.infer<typeof PipelineSchema>["spec"];

export interface TaskDefinition {
  readonly name: string;
  readonly file: string;
  readonly spec: TaskSpec;
}

export interface PipelineDefinition {
  readonly name: string;
  readonly file: string;
  readonly spec: PipelineSpec;
  /** The pipeline's tasks in the order they run (runAfter and result references respected). */
  readonly order: readonly string[];
}

/** The Tasks and Pipelines of `pipelines/`, checked against the subset the local executor runs. */
export interface Definitions {
  readonly tasks: ReadonlyMap<string, TaskDefinition>;
  readonly pipelines: ReadonlyMap<string, PipelineDefinition>;
}

/**
 * Checks every object read from `pipelines/` (readPipelineFiles): its fields, that every `$(…)` it uses
 * names something declared, and that each Pipeline's tasks get the params and workspaces their Tasks
 * need. The first problem stops with an InputError naming the file, the object and the field.
 */
export function parseDefinitions(objects: readonly PipelineFileObject[]): Definitions {
  const tasks = new Map<string, TaskDefinition>();
  const pipelines: { file: string; name: string; spec: PipelineSpec }[] = [];
  for (const { file, object } of objects) {
    const where = `${file}: ${object.kind ?? "object"} ${object.metadata?.name ?? "(no name)"}`;
    if (object.kind === "Task") {
      const task = check(TaskSchema, object, where);
      checkTask(task.spec, where);
      tasks.set(task.metadata.name, { name: task.metadata.name, file, spec: task.spec });
    } else if (object.kind === "Pipeline") {
      const pipeline = check(PipelineSchema, object, where);
      pipelines.push({ file, name: pipeline.metadata.name, spec: pipeline.spec });
    } else {
      throw new InputError(`${where}: kind ${String(object.kind)} is not supported by the local executor`);
    }
  }
  const checked = new Map<string, PipelineDefinition>();
  for (const p of pipelines) {
    const where = `${p.file}: Pipeline ${p.name}`;
    checked.set(p.name, { ...p, order: checkPipeline(p.spec, tasks, where) });
  }
  return { tasks, pipelines: checked };
}

function check<T>(schema: z.ZodType<T>, object: unknown, where: string): T {
  const parsed = schema.safeParse(object);
  if (parsed.success) return parsed.data;
  // An unknown field says most about why (`valueFrom` instead of `value` also misses `value`).
  const issues = parsed.error.issues;
  const issue = issues.find((i) => i.code === "unrecognized_keys") ?? issues[0]!;
  const at = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
  if (issue.code === "unrecognized_keys") {
    const fields = issue.keys.map((k) => `${at.replace(/^\./, "")}${at ? "." : ""}${k}`).join(", ");
    throw new InputError(`${where}: ${fields} is not supported by the local executor`, {
      details: { field: fields },
    });
  }
  throw new InputError(`${where}: ${at.replace(/^\./, "") || "(top)"}: ${issue.message}`, {
    details: { field: at.replace(/^\./, "") },
  });
}

function names(list: readonly { name: string }[] | undefined, what: string, where: string): Set<string> {
  const out = new Set<string>();
  for (const { name } of list ?? []) {
    if (out.has(name)) throw new InputError(`${where}: ${what} "${name}" is declared twice`);
    out.add(name);
  }
  return out;
}

/** What a Task's own fields may refer to. */
export function taskScope(spec: TaskSpec): VariableScope {
  return {
    params: new Set((spec.params ?? []).map((p) => p.name)),
    workspaces: new Set((spec.workspaces ?? []).map((w) => w.name)),
    results: new Set((spec.results ?? []).map((r) => r.name)),
  };
}

function checkTask(spec: TaskSpec, where: string): void {
  names(spec.params, "param", where);
  names(spec.workspaces, "workspace", where);
  names(spec.results, "result", where);
  names(spec.steps, "step", where);
  const scope = taskScope(spec);
  const texts: [string, string][] = [];
  for (const e of spec.stepTemplate?.env ?? []) texts.push([`spec.stepTemplate.env.${e.name}`, e.value]);
  spec.steps.forEach((step, i) => {
    const at = `spec.steps[${i}] (${step.name})`;
    if (step.script !== undefined && step.command !== undefined)
      throw new InputError(`${where}: ${at}: a step has either script or command, not both`);
    if (step.script === undefined && step.command === undefined)
      // The image's own entrypoint would have to be looked up (Tekton asks the registry); say it instead.
      throw new InputError(
        `${where}: ${at}: needs command or script (the local executor does not read an image's entrypoint)`,
      );
    texts.push([`${at}.image`, step.image]);
    for (const [k, v] of [
      ["command", step.command],
      ["args", step.args],
    ] as const)
      (v ?? []).forEach((t, j) => texts.push([`${at}.${k}[${j}]`, t]));
    if (step.script !== undefined) texts.push([`${at}.script`, step.script]);
    if (step.workingDir !== undefined) texts.push([`${at}.workingDir`, step.workingDir]);
    for (const e of step.env ?? []) texts.push([`${at}.env.${e.name}`, e.value]);
  });
  for (const [at, text] of texts) references(text, scope, `${where}: ${at}`);
}

function checkPipeline(
  spec: PipelineSpec,
  tasks: ReadonlyMap<string, TaskDefinition>,
  where: string,
): string[] {
  const params = names(spec.params, "param", where);
  const workspaces = names(spec.workspaces, "workspace", where);
  const pipelineTasks = new Map(spec.tasks.map((t) => [t.name, t]));
  names(spec.tasks, "task", where);
  const after = new Map<string, Set<string>>();
  for (const [i, pt] of spec.tasks.entries()) {
    const at = `${where}: spec.tasks[${i}] (${pt.name})`;
    const task = tasks.get(pt.taskRef.name);
    if (!task) throw new InputError(`${at}: taskRef ${pt.taskRef.name} names no Task in pipelines/`);
    const deps = new Set(pt.runAfter ?? []);
    const scope: VariableScope = {
      params,
      tasks: (name, result) => {
        const other = pipelineTasks.get(name);
        const otherTask = other && tasks.get(other.taskRef.name);
        if (!otherTask || !(otherTask.spec.results ?? []).some((r) => r.name === result)) return false;
        deps.add(name);
        return true;
      },
    };
    const given = names(pt.params, "param", at);
    for (const p of pt.params ?? []) {
      if (!(task.spec.params ?? []).some((d) => d.name === p.name))
        throw new InputError(`${at}: param ${p.name} is not a param of Task ${task.name}`);
      references(p.value, scope, `${at}: params.${p.name}`);
    }
    for (const d of task.spec.params ?? []) {
      if (d.default === undefined && !given.has(d.name))
        throw new InputError(`${at}: Task ${task.name} needs param ${d.name}`);
    }
    const bound = names(pt.workspaces, "workspace", at);
    for (const w of pt.workspaces ?? []) {
      if (!(task.spec.workspaces ?? []).some((d) => d.name === w.name))
        throw new InputError(`${at}: workspace ${w.name} is not a workspace of Task ${task.name}`);
      if (!workspaces.has(w.workspace))
        throw new InputError(
          `${at}: workspace ${w.name} binds ${w.workspace}, not a workspace of the Pipeline`,
        );
    }
    for (const d of task.spec.workspaces ?? []) {
      if (!d.optional && !bound.has(d.name))
        throw new InputError(`${at}: Task ${task.name} needs workspace ${d.name}`);
    }
    for (const dep of deps) {
      if (!pipelineTasks.has(dep))
        throw new InputError(`${at}: runAfter ${dep} names no task of the Pipeline`);
    }
    after.set(pt.name, deps);
  }
  for (const [i, r] of (spec.results ?? []).entries()) {
    references(
      r.value,
      {
        params,
        tasks: (name, result) => {
          const pt = pipelineTasks.get(name);
          const t = pt && tasks.get(pt.taskRef.name);
          return Boolean(t?.spec.results?.some((d) => d.name === result));
        },
      },
      `${where}: spec.results[${i}] (${r.name})`,
    );
  }
  return runOrder(after, where);
}

/** The tasks in the order they run: one at a time, each after everything it waits for. */
function runOrder(after: ReadonlyMap<string, ReadonlySet<string>>, where: string): string[] {
  const order: string[] = [];
  const placed = new Set<string>();
  while (order.length < after.size) {
    const next = [...after].find(
      ([name, deps]) => !placed.has(name) && [...deps].every((d) => placed.has(d)),
    );
    if (!next) throw new InputError(`${where}: the tasks' runAfter and result references form a cycle`);
    order.push(next[0]);
    placed.add(next[0]);
  }
  return order;
}
