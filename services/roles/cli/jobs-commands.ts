import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { jobInputToItem, parseJobsYaml } from "../../domain/jobs/jobs-yaml.js";
import type { ApiClient } from "./client.js";
import { jsonOption, print, resolveTool, toolOption } from "./options.js";

interface JobStatusRow {
  state: string;
  restarts: number;
  last_exit_code: number | null;
  last_run_id: string | null;
  last_started_at: string | null;
  last_finished_at: string | null;
  next_run_at: string | null;
  message: string | null;
}

interface RunRow {
  id: string;
  request_id: string;
  trigger: string;
  attempt: number;
  status: string;
  exit_code: number | null;
  reason: string | null;
  started_at: string;
  finished_at: string | null;
  lines?: string[];
}

interface JobRow {
  name: string;
  type: string;
  command: string;
  image: string | null;
  release_id: string;
  schedule: string | null;
  schedule_expanded: string | null;
  retry: number;
  timeout: number | null;
  mem: string | null;
  source: string;
  status: JobStatusRow;
  runs?: RunRow[];
  run_id?: string | null;
}

interface WaitAnswer {
  final: boolean;
  exit_code: number | null;
  status: string;
  runs: RunRow[];
}

/**
 * `slipway jobs run|list|show|logs|delete|restart|load|dump`: Toolforge's jobs verbs as thin calls to
 * /api/v1/tools/:tool/jobs. `--json` prints the API's answer.
 */
export function registerJobsCommands(
  program: Command,
  client: () => Promise<ApiClient>,
  defaultTool: string | undefined,
): void {
  const route = async (o: { tool?: string }) => {
    const c = await client();
    return { c, base: `/api/v1/tools/${await resolveTool(c, o.tool ?? defaultTool)}/jobs` };
  };
  const jobs = program.command("jobs").description("continuous, scheduled and one-off jobs of a tool");

  jobs
    .command("run <name>")
    .description(
      "define and start a job (one-off unless --schedule or --continuous); without --command, run an existing job now",
    )
    .option("--command <command>", "a Procfile process type or a shell command line")
    .option(
      "--image <image>",
      "a release id (pinned), or a Toolforge image name such as python3.11 (the tool's live release image)",
    )
    .option("--schedule <cron>", "5-field cron expression or @hourly/@daily/@weekly/@monthly/@yearly (UTC)")
    .option("--continuous", "keep it running; restarted with backoff when it exits")
    .option("--retry <n>", "retries of a failed run, 0-5", (v) => Number(v))
    .option("--timeout <seconds>", "kill a run after this long", (v) => Number(v))
    .option("--mem <size>", "memory limit, e.g. 512Mi or 1Gi")
    .option("--cpu <quantity>", "CPU limit, e.g. 500m or 0.5 (default: the server's SLIPWAY_RUN_CPUS)")
    .option("--wait [seconds]", "wait for a one-off run to end; print its output, exit with its exit code")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(
      async (
        name: string,
        o: {
          command?: string;
          image?: string;
          schedule?: string;
          continuous?: boolean;
          retry?: number;
          timeout?: number;
          mem?: string;
          cpu?: string;
          wait?: boolean | string;
          tool?: string;
          json?: boolean;
        },
      ) => {
        const { c, base } = await route(o);
        const body =
          o.command === undefined
            ? { name }
            : {
                name,
                command: o.command,
                image: o.image,
                schedule: o.schedule,
                continuous: o.continuous,
                retry: o.retry,
                timeout: o.timeout,
                mem: o.mem,
                cpu: o.cpu,
              };
        const job = await c.request<JobRow>("POST", base, body);
        if (o.wait === undefined || o.wait === false || !job.run_id) {
          print(o.json, job, () =>
            job.run_id
              ? `job ${job.name}: run ${job.run_id} requested`
              : `job ${job.name} (${job.type}) created`,
          );
          return;
        }
        const limitS = typeof o.wait === "string" ? Number(o.wait) : Infinity;
        const deadline = Date.now() + (Number.isFinite(limitS) ? limitS * 1000 : 1e15);
        let answer: WaitAnswer;
        do {
          const waitS = Math.max(1, Math.min(30, Math.ceil((deadline - Date.now()) / 1000)));
          answer = await c.request<WaitAnswer>(
            "GET",
            `${base}/${encodeURIComponent(job.name)}/runs/${encodeURIComponent(job.run_id)}?wait=${waitS}`,
          );
        } while (!answer.final && Date.now() < deadline);
        print(o.json, { ...job, ...answer }, () =>
          [
            ...answer.runs.flatMap((r) => [
              ...(answer.runs.length > 1 ? [runHeader(r)] : []),
              ...(r.lines ?? []),
            ]),
            answer.final
              ? `--- job ${job.name} ${answer.status}${answer.exit_code === null ? "" : ` with exit code ${answer.exit_code}`}${finalNote(answer)}`
              : `--- job ${job.name} still running after ${limitS} s`,
          ].join("\n"),
        );
        process.exitCode = answer.final ? (answer.exit_code ?? 1) : 124;
      },
    );

  jobs
    .command("list")
    .description("the tool's jobs: type, schedule, state")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (o: { tool?: string; json?: boolean }) => {
      const { c, base } = await route(o);
      const list = await c.list<JobRow>(base);
      print(o.json, list, () =>
        list.length
          ? [
              ["NAME", "TYPE", "STATE", "SCHEDULE", "LAST EXIT", "RESTARTS", "SOURCE"].join("\t"),
              ...list.map((j) =>
                [
                  j.name,
                  j.type,
                  idle(j) ? NOT_RUNNING : j.status.state,
                  j.schedule_expanded ?? "-",
                  j.status.last_exit_code ?? "-",
                  j.status.restarts,
                  j.source,
                ].join("\t"),
              ),
              ...listFooter(list),
            ].join("\n")
          : "no jobs",
      );
    });

  jobs
    .command("show <name>")
    .description("one job: state, restarts, last exit code, next run, recent runs")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (name: string, o: { tool?: string; json?: boolean }) => {
      const { c, base } = await route(o);
      const j = await c.request<JobRow>("GET", `${base}/${encodeURIComponent(name)}`);
      print(o.json, j, () => showLines(j));
    });

  jobs
    .command("logs <name>")
    .description("output of the job's kept runs (the last 20, 1000 lines each), also after they ended")
    .option("-f, --follow", "keep printing new output and new runs")
    .option("--run <id>", "only this run")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (name: string, o: { follow?: boolean; run?: string; tool?: string; json?: boolean }) => {
      const { c, base } = await route(o);
      const query = o.run ? `run=${encodeURIComponent(o.run)}` : "";
      const path = `${base}/${encodeURIComponent(name)}/logs`;
      if (o.follow && !o.json) {
        const res = await c.raw("GET", `${path}?follow=true${query ? `&${query}` : ""}`);
        if (!res.ok || !res.body) {
          await c.request("GET", path);
          return;
        }
        for await (const chunk of res.body) process.stdout.write(chunk as Uint8Array);
        return;
      }
      const r = await c.request<{ runs: RunRow[] }>("GET", `${path}${query ? `?${query}` : ""}`);
      print(o.json, r, () =>
        r.runs.length
          ? r.runs.flatMap((run) => [runHeader(run), ...(run.lines ?? []), runFooter(run)]).join("\n")
          : `job ${name} has not run yet`,
      );
    });

  jobs
    .command("delete <name>")
    .description("stop the job and remove it, with its runs and logs")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (name: string, o: { tool?: string; json?: boolean }) => {
      const { c, base } = await route(o);
      const r = await c.request<unknown>("DELETE", `${base}/${encodeURIComponent(name)}`);
      print(o.json, r, () => `job ${name} deleted`);
    });

  jobs
    .command("restart <name>")
    .description("replace a continuous job's process; run any other job again now")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (name: string, o: { tool?: string; json?: boolean }) => {
      const { c, base } = await route(o);
      const r = await c.request<{ run_id: string | null }>(
        "POST",
        `${base}/${encodeURIComponent(name)}/restart`,
      );
      print(o.json, r, () =>
        r.run_id ? `job ${name}: run ${r.run_id} requested` : `job ${name} restarting`,
      );
    });

  jobs
    .command("load <file>")
    .description(
      "make the tool's API-defined jobs exactly those of a Toolforge jobs.yaml (unchanged jobs keep running)",
    )
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (file: string, o: { tool?: string; json?: boolean }) => {
      // Checked here first, so a typo is reported with the file's job names before anything is sent.
      const items = parseJobsYaml(await readFile(file, "utf8"));
      const { c, base } = await route(o);
      const r = await c.request<{
        created: string[];
        updated: string[];
        deleted: string[];
        unchanged: string[];
      }>("PUT", base, { jobs: items.map(jobInputToItem) });
      print(
        o.json,
        r,
        () =>
          (["created", "updated", "deleted", "unchanged"] as const)
            .filter((k) => r[k].length > 0)
            .map((k) => `${k}: ${r[k].join(", ")}`)
            .join("\n") || "no jobs in the file, none defined",
      );
    });

  jobs
    .command("dump")
    .description("print the API-defined jobs as a Toolforge jobs.yaml")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (o: { tool?: string; json?: boolean }) => {
      const { c, base } = await route(o);
      const r = await c.request<{ yaml: string; count: number }>("GET", `${base}?dump=true`);
      if (o.json) print(true, r, () => "");
      else process.stdout.write(r.yaml);
    });
}

/** A job that exists but has never run (a Procfile's one-off types, until `jobs run NAME`). */
const NOT_RUNNING = "defined, not running";

/** Scheduled jobs wait for their time; any other job in state `defined` has never been started. */
function idle(j: JobRow): boolean {
  return j.status.state === "defined" && j.type !== "scheduled";
}

/** Under `jobs list`: which jobs are defined but not running, and why stopped ones stopped. */
function listFooter(list: readonly JobRow[]): string[] {
  const idleNames = list.filter(idle).map((j) => j.name);
  const stopped = list.filter((j) => j.status.state === "stopped" && j.status.message);
  return [
    ...(idleNames.length
      ? ["", `${NOT_RUNNING}: ${idleNames.join(", ")} (\`slipway jobs run NAME\` runs one once)`]
      : []),
    ...(stopped.length ? ["", ...stopped.map((j) => `${j.name} ${j.status.message}`)] : []),
  ];
}

/** The last run's reason after a final status that does not already say it (`succeeded`: output incomplete). */
function finalNote(answer: { status: string; runs: readonly { reason?: string | null }[] }): string {
  const reason = answer.runs.at(-1)?.reason;
  return reason && answer.status !== "failed" ? ` (${reason})` : "";
}

function runHeader(run: RunRow): string {
  return `--- run ${run.id} (${run.trigger}${run.attempt > 1 ? `, attempt ${run.attempt}` : ""}) started ${run.started_at}`;
}

function runFooter(run: RunRow): string {
  if (run.status === "running") return `--- run ${run.id} is still running`;
  const code = run.exit_code === null ? "" : ` with exit code ${run.exit_code}`;
  return `--- run ${run.id} ${run.status}${code}${run.reason && run.status !== "failed" ? ` (${run.reason})` : ""}`;
}

function showLines(j: JobRow): string {
  const s = j.status;
  const rows: [string, string | number | null][] = [
    ["name", j.name],
    ["type", j.type],
    ["command", j.command],
    ["image", j.image ?? "(live release)"],
    ["release", j.release_id],
    ["schedule", j.schedule ? `${j.schedule} (${j.schedule_expanded} UTC)` : null],
    ["retry", j.retry],
    ["timeout", j.timeout === null ? null : `${j.timeout} s`],
    ["memory", j.mem],
    ["source", j.source],
    ["state", s.state],
    ["restarts", j.type === "continuous" ? s.restarts : null],
    ["last exit code", s.last_exit_code],
    ["last run", s.last_run_id ? `${s.last_run_id} at ${s.last_started_at}` : null],
    ["next run", s.next_run_at],
    ["message", s.message],
  ];
  const lines = rows.filter(([, v]) => v !== null).map(([k, v]) => `${`${k}:`.padEnd(16)}${v}`);
  const runs = (j.runs ?? [])
    .slice(0, 5)
    .map(
      (r) =>
        `  ${r.id}  ${r.status.padEnd(9)} ${r.exit_code === null ? "-" : String(r.exit_code).padStart(3)}  ${r.started_at}  ${r.trigger}${r.reason ? `  ${r.reason}` : ""}`,
    );
  return [...lines, ...(runs.length ? ["recent runs:", ...runs] : [])].join("\n");
}
