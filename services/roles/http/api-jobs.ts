import { Router, type Request, type Response } from "express";
import { z } from "zod";
import type { JobService, RunLog } from "../../domain/jobs/job-service.js";
import type { JobDefinition, JobRun, JobStatus } from "../../domain/jobs/job.js";
import { checkJobList, dumpJobsYaml, toJobInput } from "../../domain/jobs/jobs-yaml.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import { validateToolName } from "../../domain/tools/tool.js";
import { InputError } from "../../platform/errors.js";
import { requireTool } from "./auth.js";
import { JOB_PAGES, pageOf, sendPage } from "./pagination.js";

/** The longest one request waits for a run; the CLI's `--wait` asks again until the run is over. */
const MAX_WAIT_S = 60;
const FOLLOW_POLL_MS = 1000;

const loadBody = z.object({ jobs: z.array(z.unknown()).max(500) });

/**
 * `/api/v1/tools/:tool/jobs`: Toolforge's jobs verbs. Mounted after authentication; thin: parse,
 * authorise, call JobService, shape the answer (snake_case).
 */
export function jobsRouter(deps: { readonly tools: ToolService; readonly jobs: JobService }): Router {
  const r = Router();
  const base = "/api/v1/tools/:tool/jobs";

  r.get(base, async (req, res) => {
    const tool = await toolOf(req, deps);
    if (req.query.dump === "true" || req.query.dump === "1") {
      const jobs = await deps.jobs.dumpable(tool);
      res.json({ yaml: dumpJobsYaml(jobs), count: jobs.length });
      return;
    }
    const page = pageOf(req, JOB_PAGES);
    const jobs = await deps.jobs.list(tool, { after: page.after?.id, limit: page.limit + 1 });
    sendPage(
      req,
      res,
      page,
      jobs,
      ({ job }) => ({ at: 0, id: job.name }),
      ({ job, status }) => jobView(job, status),
    );
  });

  r.post(base, async (req, res) => {
    const tool = await toolOf(req, deps);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const result =
      body.command === undefined && Object.keys(body).every((k) => k === "name")
        ? await deps.jobs.run(tool, { name: typeof body.name === "string" ? body.name : "" })
        : await deps.jobs.run(tool, toJobInput(body));
    const status = (await deps.jobs.show(tool, result.job.name)).status;
    res.status(201).json({ ...jobView(result.job, status), run_id: result.run_id });
  });

  r.put(base, async (req, res) => {
    const tool = await toolOf(req, deps);
    const parsed = loadBody.safeParse(req.body);
    if (!parsed.success) throw new InputError('send {"jobs": [ … ]}: a list of jobs in jobs.yaml shape');
    res.json(await deps.jobs.load(tool, checkJobList(parsed.data.jobs)));
  });

  r.get(`${base}/:name`, async (req, res) => {
    const tool = await toolOf(req, deps);
    const { job, status, runs } = await deps.jobs.show(tool, String(req.params.name));
    res.json({ ...jobView(job, status), runs });
  });

  r.delete(`${base}/:name`, async (req, res) => {
    const tool = await toolOf(req, deps);
    const job = await deps.jobs.delete(tool, String(req.params.name));
    res.json({ name: job.name, deleted: true });
  });

  r.post(`${base}/:name/restart`, async (req, res) => {
    const tool = await toolOf(req, deps);
    const result = await deps.jobs.restart(tool, String(req.params.name));
    res.json({ name: result.job.name, revision: result.job.revision, run_id: result.run_id });
  });

  r.get(`${base}/:name/runs/:run`, async (req, res) => {
    const tool = await toolOf(req, deps);
    const name = String(req.params.name);
    const runId = String(req.params.run);
    const waitS = Math.min(Math.max(Number(req.query.wait ?? 0) || 0, 0), MAX_WAIT_S);
    const controller = new AbortController();
    res.on("close", () => controller.abort());
    const done = await deps.jobs.waitForRun(tool, name, runId, waitS * 1000, controller.signal);
    if (done) {
      res.json({
        final: true,
        exit_code: done.final.exit_code,
        status: done.final.status,
        runs: done.runs.map(runLogView),
      });
      return;
    }
    const runs = (await deps.jobs.logs(tool, name)).filter(
      (l) => l.run.request_id === runId || l.run.id === runId,
    );
    res.json({
      final: false,
      exit_code: null,
      status: runs.at(-1)?.run.status ?? "pending",
      runs: runs.map(runLogView),
    });
  });

  r.get(`${base}/:name/logs`, async (req, res) => {
    const tool = await toolOf(req, deps);
    const name = String(req.params.name);
    const runId = typeof req.query.run === "string" && req.query.run ? req.query.run : undefined;
    if (req.query.follow === "true" || req.query.follow === "1") {
      await follow(req, res, deps.jobs, tool, name, runId);
      return;
    }
    res.json({ job: name, runs: (await deps.jobs.logs(tool, name, runId)).map(runLogView) });
  });

  return r;
}

/**
 * Plain text as it is written: every kept run, then new runs as they start, each framed by a header
 * and an end line. Ends when the client goes, the job is deleted, or a one-off job has nothing left
 * to run; scheduled and continuous jobs are followed until the client stops.
 */
async function follow(
  req: Request,
  res: Response,
  jobs: JobService,
  tool: string,
  name: string,
  runId: string | undefined,
): Promise<void> {
  const first = await jobs.get(tool, name);
  res.status(200).type("text/plain; charset=utf-8");
  res.setHeader("Cache-Control", "no-store");
  res.flushHeaders();
  let open = true;
  res.on("close", () => (open = false));
  const seen = new Map<string, number>();
  const ended = new Set<string>();
  while (open) {
    let logs: RunLog[];
    try {
      logs = await jobs.logs(tool, name, runId);
    } catch {
      res.write(`--- job ${name} was deleted\n`);
      break;
    }
    for (const { run, lines } of logs) {
      const printed = seen.get(run.id);
      if (printed === undefined) res.write(`${runHeader(run)}\n`);
      for (const line of lines.slice(printed ?? 0)) res.write(`${line}\n`);
      seen.set(run.id, lines.length);
      if (run.status !== "running" && !ended.has(run.id)) {
        ended.add(run.id);
        res.write(`${runFooter(run)}\n`);
      }
    }
    const running = logs.some((l) => l.run.status === "running");
    if (!running && (runId !== undefined || first.type === "one-off")) {
      const status = (await jobs.show(tool, name).catch(() => undefined))?.status;
      if (runId !== undefined || status?.state !== "pending") break;
    }
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
  }
  res.end();
}

export function runHeader(run: JobRun): string {
  return `--- run ${run.id} (${run.trigger}${run.attempt > 1 ? `, attempt ${run.attempt}` : ""}) started ${run.started_at}`;
}

export function runFooter(run: JobRun): string {
  const code = run.exit_code === null ? "" : ` with exit code ${run.exit_code}`;
  return `--- run ${run.id} ${run.status}${code}${run.reason && run.status !== "failed" ? ` (${run.reason})` : ""}`;
}

function runLogView(l: RunLog) {
  return { ...l.run, lines: l.lines };
}

export function jobView(job: JobDefinition, status: JobStatus) {
  return {
    name: job.name,
    tool: job.tool,
    type: job.type,
    command: job.command,
    image: job.image_name ?? null,
    image_ref: job.image,
    release_id: job.release_id,
    schedule: job.schedule ?? null,
    schedule_expanded: job.cron ?? null,
    retry: job.retry,
    timeout: job.timeout_s ?? null,
    mem: job.memory_mb === undefined ? null : `${job.memory_mb}Mi`,
    source: job.source,
    runs_on: job.runs_on ?? "slipway",
    revision: job.revision,
    created_at: job.created_at,
    updated_at: job.updated_at,
    status,
  };
}

export async function toolOf(req: Request, deps: { readonly tools: ToolService }): Promise<string> {
  const name = validateToolName(String(req.params.tool));
  requireTool(req, name);
  return (await deps.tools.get(name)).name;
}
