import { chmod, chown, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { throwIfAborted } from "../../domain/pipeline/local-backend.js";
import { parseQuantity } from "../../domain/kubernetes/limits.js";
import { InputError, PipelineError, SlipwayError, errorMessage } from "../../platform/errors.js";
import { describeLimit, type LimitExceeded } from "../../ports/limits.js";
import type { BuildSandbox, Sandbox, SandboxSpec } from "../../ports/sandbox.js";
import { mapFailure, type PipelineRunState, type TaskRunState } from "../tekton/status.js";
import { StepOutput } from "../tekton/step-output.js";
import type { Definitions, StepSpec, TaskDefinition } from "./definitions.js";
import { expand, type Reference } from "./variables.js";

/** Tekton's default cap on one TaskRun's results (they travel in the termination message). */
const RESULTS_MAX_BYTES = 4096;
/** Where Tekton mounts a step's results, its scripts and the pod's shared /workspace. */
const RESULTS_PATH = "/tekton/results";
const SCRIPTS_PATH = "/tekton/scripts";
const WORKSPACE_ROOT = "/workspace";

export interface LocalTektonOptions {
  /**
   * Starts the containers of a pipeline task's TaskRun (podman: confined, limits watched), on the network
   * that task may use: a cluster's network policy per task, locally a podman network per task.
   */
  readonly sandbox: (pipelineTask: string) => BuildSandbox;
  /** The pod template's user and group: steps run as these unless their securityContext says otherwise. */
  readonly user: { readonly uid: number; readonly gid: number };
  /** Limits of a step that names none (a cluster's LimitRange): every local container is bounded. */
  readonly defaults: { readonly memoryMb: number; readonly cpus: number };
  /** Scratch directory for this run's results and scripts. */
  readonly workDir: string;
  /** Prefix of this run's container names (one container per TaskRun, `--replace`d if left over). */
  readonly namePrefix: string;
  /** The build the containers belong to (labelled, so a dead builder's containers are found). */
  readonly buildId?: string | undefined;
  /**
   * What a cluster's image carries in a layer of its own and this machine mounts instead (read-only
   * into every step, e.g. slipway-lifecycle at /cnb), and the image environment that goes with it
   * (PATH). The Task's own env is set over it, as a container's env is over its image's.
   */
  readonly imageOverlay?: {
    readonly mounts: readonly { readonly host: string; readonly container: string }[];
    readonly env: Readonly<Record<string, string>>;
  };
}

/** A PipelineRun's (or TaskRun's) spec, locally: params, workspaces bound to host directories, limits. */
export interface RunInput {
  readonly params: Readonly<Record<string, string>>;
  /** Workspace name → host directory; an optional workspace left out is unbound. */
  readonly workspaces: Readonly<Record<string, string>>;
  /** The run's timeout (`spec.timeouts.pipeline`); none: until done or aborted. */
  readonly timeoutMs?: number | undefined;
  /** As `taskRunSpecs[].stepSpecs[].computeResources.limits`, keyed `<pipeline task>/<step>`. */
  readonly stepLimits?: Readonly<Record<string, { readonly memoryMb: number; readonly cpus: number }>>;
}

export interface RunEvents {
  /** Every line each step prints, in order. */
  readonly onLog: (line: string) => void;
  /** A step starts (pipeline task name, step name). */
  readonly onStep?: ((task: string, step: string) => void) | undefined;
  /** Aborting stops the running step's container and ends the run cancelled. */
  readonly signal: AbortSignal;
}

/** A run that succeeded, in the shapes Tekton reports it (so status.ts maps local and cluster runs alike). */
export interface RunOutcome {
  readonly results: Readonly<Record<string, string>>;
  readonly pipelineRun: PipelineRunState;
  readonly taskRuns: readonly TaskRunState[];
}

type StepState = NonNullable<NonNullable<TaskRunState["status"]>["steps"]>[number];

/**
 * Runs the Tasks and Pipelines of `pipelines/` on this machine: each TaskRun a podman container (a pod,
 * see TaskPod) started from its steps' image with the Task's workspaces and results directory
 * bind-mounted, each step a `podman exec` in it with the step's env, user and command, one step after
 * another, one task after another. What a step prints streams to `onLog`;
 * a failure is the same error the cluster backend reports for the same TaskRun state (status.ts).
 */
export class LocalTektonExecutor {
  constructor(
    private readonly definitions: Definitions,
    private readonly options: LocalTektonOptions,
  ) {}

  /** Runs Pipeline `name` as a PipelineRun with `input` would; rejects with the mapped failure. */
  async runPipeline(name: string, input: RunInput, events: RunEvents): Promise<RunOutcome> {
    const pipeline = this.definitions.pipelines.get(name);
    if (!pipeline) throw new InputError(`pipelines/ has no Pipeline ${name}`);
    const where = `PipelineRun of ${name}`;
    const params = bindParams(pipeline.spec.params, input.params, where);
    const declared = new Map((pipeline.spec.workspaces ?? []).map((w) => [w.name, w]));
    const workspaces = bindWorkspaces([...declared.values()], input.workspaces, where);
    const tasks = new Map(pipeline.spec.tasks.map((t) => [t.name, t]));
    return this.timed(input, events, async (signal, state) => {
      const results = new Map<string, Readonly<Record<string, string>>>();
      const resolve = (ref: Reference): string => {
        if (ref.kind === "param") return params[ref.name]!;
        if (ref.kind === "task-result") {
          const value = results.get(ref.task)?.[ref.result];
          if (value === undefined) {
            state.failure = {
              reason: "InvalidTaskResultReference",
              message: `task ${ref.task} did not write its result ${ref.result}`,
            };
            throw new StopRun();
          }
          return value;
        }
        throw new InputError(`${where}: ${ref.kind} variables are not available in a Pipeline`);
      };
      for (const taskName of pipeline.order) {
        const pt = tasks.get(taskName)!;
        const task = this.definitions.tasks.get(pt.taskRef.name)!;
        const taskParams: Record<string, string> = {};
        for (const p of pt.params ?? []) taskParams[p.name] = expand(p.value, resolve, where);
        const taskWorkspaces: Record<string, string> = {};
        for (const w of pt.workspaces ?? []) {
          const host = workspaces[w.workspace];
          if (host !== undefined) taskWorkspaces[w.name] = host;
        }
        const outcome = await this.task(
          task,
          pt.name,
          taskParams,
          taskWorkspaces,
          input,
          events,
          signal,
          state,
        );
        results.set(pt.name, outcome);
      }
      const out: Record<string, string> = {};
      for (const r of pipeline.spec.results ?? []) {
        // A result whose task did not write it is left out, as Tekton leaves it out.
        try {
          out[r.name] = expand(r.value, resolve, where);
        } catch (error) {
          if (!(error instanceof StopRun)) throw error;
          state.failure = undefined;
        }
      }
      return out;
    });
  }

  /**
   * Runs Task `name` alone as a TaskRun with `input` would, as pipeline task `pipelineTask` (the name
   * its failures are mapped by: `fetch` → source_fetch_failed), the Task's own name by default.
   */
  async runTask(name: string, input: RunInput, events: RunEvents, pipelineTask = name): Promise<RunOutcome> {
    const task = this.definitions.tasks.get(name);
    if (!task) throw new InputError(`pipelines/ has no Task ${name}`);
    return this.timed(input, events, (signal, state) =>
      this.task(task, pipelineTask, input.params, input.workspaces, input, events, signal, state),
    );
  }

  /** The run's timer and cancel around `body`, and the run's outcome mapped as a cluster's would be. */
  private async timed(
    input: RunInput,
    events: RunEvents,
    body: (signal: AbortSignal, state: RunState) => Promise<Readonly<Record<string, string>>>,
  ): Promise<RunOutcome> {
    throwIfAborted(events.signal);
    const state: RunState = { taskRuns: [], outputs: new Map(), timedOut: false };
    const controller = new AbortController();
    const onAbort = () => controller.abort(events.signal.reason);
    events.signal.addEventListener("abort", onAbort, { once: true });
    const timer =
      input.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            state.timedOut = true;
            controller.abort(new SlipwayError("cancelled", "timeout"));
          }, input.timeoutMs);
    try {
      const results = await body(controller.signal, state).catch((error: unknown) => {
        if (error instanceof StopRun) return undefined;
        throw error;
      });
      if (results !== undefined) {
        const pipelineRun = runState("True", "Succeeded", "Tasks Completed", results);
        return { results, pipelineRun, taskRuns: state.taskRuns };
      }
      if (events.signal.aborted && !state.timedOut) throwIfAborted(events.signal);
      const run = state.timedOut
        ? runState(
            "False",
            "PipelineRunTimeout",
            `the run timed out after ${(input.timeoutMs ?? 0) / 1000} s`,
          )
        : runState("False", state.failure?.reason ?? "Failed", state.failure?.message ?? "a task failed");
      throw withLimit(
        mapFailure(run, state.taskRuns, (task, step) => state.outputs.get(`${task}/${step}`)),
        state.exceeded,
      );
    } finally {
      if (timer) clearTimeout(timer);
      events.signal.removeEventListener("abort", onAbort);
    }
  }

  /** One TaskRun: its steps in order; the first failing step ends it (the rest are skipped, as in Tekton). */
  private async task(
    task: TaskDefinition,
    pipelineTask: string,
    given: Readonly<Record<string, string>>,
    bound: Readonly<Record<string, string>>,
    input: RunInput,
    events: RunEvents,
    signal: AbortSignal,
    state: RunState,
  ): Promise<Record<string, string>> {
    const where = `${task.file}: Task ${task.name}`;
    const params = bindParams(task.spec.params, given, where);
    const workspaces = bindWorkspaces(task.spec.workspaces ?? [], bound, where);
    const dir = path.join(this.options.workDir, pipelineTask);
    const resultsDir = path.join(dir, "results");
    const scriptsDir = path.join(dir, "scripts");
    const podWorkspace = path.join(dir, "workspace");
    for (const d of [resultsDir, scriptsDir, podWorkspace]) await mkdir(d, { recursive: true });
    // Every step may write results and /workspace whatever its user, as into Tekton's emptyDirs.
    await chmod(resultsDir, 0o777);
    await chmod(podWorkspace, 0o777);
    for (const host of Object.values(workspaces)) await this.own(host);
    const resolve = (ref: Reference): string => {
      switch (ref.kind) {
        case "param":
          return params[ref.name]!;
        case "workspace": {
          const decl = task.spec.workspaces?.find((w) => w.name === ref.name);
          const isBound = workspaces[ref.name] !== undefined;
          if (ref.field === "bound") return String(isBound);
          // An unbound optional workspace's path is empty, as Tekton makes it.
          return isBound ? (decl?.mountPath ?? `${WORKSPACE_ROOT}/${ref.name}`) : "";
        }
        case "result":
          return `${RESULTS_PATH}/${ref.name}`;
        case "task-result":
          throw new InputError(`${where}: $(tasks.…) is a Pipeline's variable, not a Task's`);
      }
    };
    const sub = (text: string) => expand(text, resolve, where);
    const mounts = [
      { host: podWorkspace, container: WORKSPACE_ROOT, readOnly: false },
      ...(task.spec.workspaces ?? []).flatMap((w) => {
        const host = workspaces[w.name];
        return host === undefined
          ? []
          : [
              {
                host,
                container: w.mountPath ?? `${WORKSPACE_ROOT}/${w.name}`,
                readOnly: w.readOnly ?? false,
              },
            ];
      }),
      { host: resultsDir, container: RESULTS_PATH, readOnly: false },
      { host: scriptsDir, container: SCRIPTS_PATH, readOnly: true },
      ...(this.options.imageOverlay?.mounts ?? []).map((m) => ({ ...m, readOnly: true })),
    ];
    const steps: StepState[] = [];
    const taskRun = (status: "True" | "False", reason: string, message: string): TaskRunState => ({
      apiVersion: "tekton.dev/v1",
      kind: "TaskRun",
      metadata: {
        name: `${this.options.namePrefix}-${pipelineTask}`,
        labels: { "tekton.dev/pipelineTask": pipelineTask, "tekton.dev/task": task.name },
      },
      status: { conditions: [{ type: "Succeeded", status, reason, message }], steps },
    });
    const template = task.spec.stepTemplate;
    // Every step is planned before any runs: its container's limits are the largest of the steps that
    // share it, and a step refused (runAsNonRoot as root) refuses the TaskRun before it starts anything.
    const planned: PlannedStep[] = [];
    for (const step of task.spec.steps) {
      const env: Record<string, string> = {};
      for (const e of [...(template?.env ?? []), ...(step.env ?? [])]) env[e.name] = sub(e.value);
      const security = { ...template?.securityContext, ...step.securityContext };
      const uid = security.runAsUser ?? this.options.user.uid;
      const gid = security.runAsGroup ?? this.options.user.gid;
      if (security.runAsNonRoot && uid === 0)
        throw new InputError(`${where}: step ${step.name} has runAsNonRoot but would run as root (uid 0)`);
      const image = sub(step.image);
      const readOnlyRootfs = security.readOnlyRootFilesystem ?? false;
      planned.push({
        name: step.name,
        container: `${image}\n${readOnlyRootfs}`,
        image,
        readOnlyRootfs,
        user: `${uid}:${gid}`,
        env,
        workdir: step.workingDir === undefined ? WORKSPACE_ROOT : sub(step.workingDir),
        limits: this.limits(
          step,
          template?.computeResources,
          input.stepLimits?.[`${pipelineTask}/${step.name}`],
          where,
        ),
        command: await this.command(step, scriptsDir, sub),
      });
    }
    const pod = new TaskPod(this.options, pipelineTask, dir, mounts, planned);
    try {
      for (const step of planned) {
        const startedAt = new Date().toISOString();
        events.onStep?.(pipelineTask, step.name);
        // As a cluster's follower keeps it: the last lines, and what the lifecycle's marks said.
        const output = new StepOutput();
        state.outputs.set(`${pipelineTask}/${step.name}`, output);
        let exitCode: number;
        let exceeded: LimitExceeded | undefined;
        try {
          signal.throwIfAborted();
          const sandbox = await pod.container(step);
          ({ exitCode, exceeded } = await sandbox.exec(step.command, {
            env: step.env,
            workdir: step.workdir,
            user: step.user,
            signal,
            onOutput: (line) => {
              const shown = output.take(line);
              if (shown !== undefined) events.onLog(shown);
            },
          }));
        } catch (error) {
          if (!signal.aborted) {
            if (error instanceof SlipwayError) throw error;
            throw new PipelineError(
              "build_failed",
              `could not run step ${pipelineTask}/${step.name}: ${errorMessage(error)}`,
              { cause: error },
            );
          }
          exitCode = 137;
        }
        if (signal.aborted) exitCode = exitCode === 0 ? 137 : exitCode;
        const reason = exceeded?.kind === "memory" ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error";
        steps.push({
          name: step.name,
          container: `step-${step.name}`,
          terminated: { exitCode, reason, startedAt, finishedAt: new Date().toISOString() },
        });
        if (exitCode !== 0 || signal.aborted) {
          state.exceeded = exceeded;
          const timedOut = state.timedOut;
          state.taskRuns.push(
            taskRun(
              "False",
              timedOut ? "TaskRunTimeout" : "Failed",
              `step ${step.name} exited with code ${exitCode}`,
            ),
          );
          throw new StopRun();
        }
      }
    } finally {
      await pod.close();
    }
    const results = await this.results(task, resultsDir);
    if (typeof results === "string") {
      state.taskRuns.push(taskRun("False", "TaskRunResultLargerThanAllowedLimit", results));
      throw new StopRun();
    }
    state.taskRuns.push(taskRun("True", "Succeeded", "All Steps have completed executing"));
    return results;
  }

  /** The step's command: its script written where Tekton puts it (`/tekton/scripts`), or command + args. */
  private async command(step: StepSpec, scriptsDir: string, sub: (t: string) => string): Promise<string[]> {
    const args = (step.args ?? []).map(sub);
    if (step.script === undefined) return [...(step.command ?? []).map(sub), ...args];
    const script = sub(step.script);
    // Tekton's rule: a script without a shebang is run by sh with -e.
    const text = script.startsWith("#!") ? script : `#!/bin/sh\nset -e\n${script}`;
    const file = path.join(scriptsDir, step.name);
    await writeFile(file, text, { mode: 0o755 });
    await chmod(file, 0o755);
    return [`${SCRIPTS_PATH}/${step.name}`, ...args];
  }

  private limits(
    step: StepSpec,
    template: StepSpec["computeResources"],
    override: { memoryMb: number; cpus: number } | undefined,
    where: string,
  ): { memoryMb: number; cpus: number } {
    if (override) return override;
    const limits = { ...template?.limits, ...step.computeResources?.limits };
    const quantity = (q: string | undefined, what: string): number | undefined => {
      if (q === undefined) return undefined;
      const v = parseQuantity(q);
      if (v === undefined || v <= 0)
        throw new InputError(`${where}: step ${step.name}: limits.${what} "${q}" is not a quantity`);
      return v;
    };
    const memory = quantity(limits.memory, "memory");
    const cpu = quantity(limits.cpu, "cpu");
    return {
      memoryMb: memory === undefined ? this.options.defaults.memoryMb : Math.ceil(memory / 2 ** 20),
      cpus: cpu === undefined ? this.options.defaults.cpus : Math.round(cpu * 1000) / 1000,
    };
  }

  /** The Task's results as its steps wrote them; a message instead when they exceed Tekton's cap. */
  private async results(task: TaskDefinition, dir: string): Promise<Record<string, string> | string> {
    const out: Record<string, string> = {};
    let bytes = 0;
    for (const r of task.spec.results ?? []) {
      const value = await readFile(path.join(dir, r.name), "utf8").catch(() => undefined);
      if (value === undefined) continue;
      bytes += Buffer.byteLength(value);
      out[r.name] = value;
    }
    if (bytes > RESULTS_MAX_BYTES)
      return `the results of Task ${task.name} are ${bytes} bytes, more than Tekton's ${RESULTS_MAX_BYTES}`;
    return out;
  }

  /** A bound workspace belongs to the pod's user, as a volume with the pod's fsGroup does on a cluster. */
  private async own(dir: string): Promise<void> {
    if (process.getuid?.() !== 0) return;
    await chown(dir, this.options.user.uid, this.options.user.gid);
  }
}

interface RunState {
  readonly taskRuns: TaskRunState[];
  readonly outputs: Map<string, StepOutput>;
  timedOut: boolean;
  exceeded?: LimitExceeded | undefined;
  failure?: { readonly reason: string; readonly message: string } | undefined;
}

/** Ends the run after the failing TaskRun has been recorded; mapped once, in `timed`. */
class StopRun extends Error {}

function runState(
  status: "True" | "False",
  reason: string,
  message: string,
  results: Readonly<Record<string, string>> = {},
): PipelineRunState {
  return {
    apiVersion: "tekton.dev/v1",
    kind: "PipelineRun",
    status: {
      conditions: [{ type: "Succeeded", status, reason, message }],
      results: Object.entries(results).map(([name, value]) => ({ name, value })),
    },
  };
}

/** The limit a step hit, with its size (a cluster's mapping knows only that it was memory). */
function withLimit(error: SlipwayError, hit: LimitExceeded | undefined): SlipwayError {
  if (!hit || !(error instanceof PipelineError)) return error;
  const details = { ...error.details, limit: hit };
  // As the podman backend says it: the build ran out (details.step says where, details.buildpack who).
  return new PipelineError(error.code, `build ${describeLimit(hit)}`, { details });
}

/** Params as Tekton binds them: every given one declared, every declared one given or defaulted. */
function bindParams(
  declared: readonly { name: string; default?: string | undefined }[] | undefined,
  given: Readonly<Record<string, string>>,
  where: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(given)) {
    if (!(declared ?? []).some((d) => d.name === name))
      throw new InputError(`${where}: param ${name} is not declared`);
  }
  for (const d of declared ?? []) {
    const value = given[d.name] ?? d.default;
    if (value === undefined) throw new InputError(`${where}: param ${d.name} is required`);
    out[d.name] = value;
  }
  return out;
}

function bindWorkspaces(
  declared: readonly { name: string; optional?: boolean | undefined }[],
  given: Readonly<Record<string, string>>,
  where: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(given)) {
    if (!declared.some((d) => d.name === name))
      throw new InputError(`${where}: workspace ${name} is not declared`);
  }
  for (const d of declared) {
    const host = given[d.name];
    if (host === undefined && !d.optional) throw new InputError(`${where}: workspace ${d.name} is required`);
    if (host !== undefined) out[d.name] = host;
  }
  return out;
}

/** A step with everything substituted, ready to exec. */
interface PlannedStep {
  readonly name: string;
  /** Steps with the same key share a container: the same image and root filesystem mode. */
  readonly container: string;
  readonly image: string;
  readonly readOnlyRootfs: boolean;
  /** `uid:gid` */
  readonly user: string;
  readonly env: Readonly<Record<string, string>>;
  readonly workdir: string;
  readonly limits: { readonly memoryMb: number; readonly cpus: number };
  readonly command: readonly string[];
}

/**
 * A TaskRun's pod on this machine: one podman container per distinct image (and root filesystem mode)
 * among the Task's steps, which for every Task of `pipelines/` is one container per TaskRun, started at
 * the first step that needs it and idle between steps; each step is a `podman exec` in it with its own
 * user, env, working directory and command. A container start is about a second here and a build has
 * six steps, so this is most of what the pipelines backend cost over the podman backend.
 *
 * What that changes against a cluster, where each step is a container of its own: the container's
 * memory and CPU limits are the largest of its steps' (one cgroup), and the steps see one root
 * filesystem. `/tmp` is kept per step all the same — a host directory mounted there and emptied before
 * each later step — so a Task that hands files over in `/tmp` fails locally as it would on a cluster;
 * the rest of the root filesystem (a user's home) is shared, which a cluster would not do.
 */
class TaskPod {
  private readonly started = new Map<string, { readonly sandbox: Sandbox; readonly tmp?: string }>();
  private readonly limits = new Map<string, { memoryMb: number; cpus: number }>();

  constructor(
    private readonly options: LocalTektonOptions,
    private readonly pipelineTask: string,
    private readonly dir: string,
    private readonly mounts: SandboxSpec["mounts"],
    steps: readonly PlannedStep[],
  ) {
    for (const s of steps) {
      const l = this.limits.get(s.container);
      this.limits.set(
        s.container,
        l
          ? { memoryMb: Math.max(l.memoryMb, s.limits.memoryMb), cpus: Math.max(l.cpus, s.limits.cpus) }
          : { ...s.limits },
      );
    }
  }

  /** The running container of `step`, started now if it is the first step to need it. */
  async container(step: PlannedStep): Promise<Sandbox> {
    const found = this.started.get(step.container);
    if (found) {
      if (found.tmp !== undefined) await emptyDir(found.tmp);
      return found.sandbox;
    }
    const index = this.started.size;
    // A read-only root filesystem keeps no writable /tmp, as a pod's read-only container has none.
    const tmp = step.readOnlyRootfs ? undefined : path.join(this.dir, `tmp-${index}`);
    if (tmp !== undefined) {
      await mkdir(tmp, { recursive: true });
      await chmod(tmp, 0o1777);
    }
    const limits = this.limits.get(step.container)!;
    const sandbox = await this.options.sandbox(this.pipelineTask).start({
      name: `${this.options.namePrefix}-${this.pipelineTask}${index === 0 ? "" : `-${index}`}`.slice(0, 200),
      image: step.image,
      mounts:
        tmp === undefined ? this.mounts : [...this.mounts, { host: tmp, container: "/tmp", readOnly: false }],
      user: step.user,
      memoryMb: limits.memoryMb,
      cpus: limits.cpus,
      env: this.options.imageOverlay?.env ?? {},
      buildId: this.options.buildId,
      readOnlyRootfs: step.readOnlyRootfs,
    });
    this.started.set(step.container, tmp === undefined ? { sandbox } : { sandbox, tmp });
    return sandbox;
  }

  async close(): Promise<void> {
    for (const { sandbox } of this.started.values()) await sandbox.close();
  }
}

/** Removes what is in `dir` but not `dir` itself: a running container has it bind-mounted. */
async function emptyDir(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(path.join(dir, entry), { recursive: true, force: true });
}
