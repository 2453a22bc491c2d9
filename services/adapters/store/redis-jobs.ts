import type { Redis } from "ioredis";
import {
  INITIAL_STATUS,
  KEPT_LINES_PER_RUN,
  KEPT_RUNS,
  type JobDefinition,
  type JobRun,
  type JobStatus,
} from "../../domain/jobs/job.js";
import type { JobsStore, RunRequest, ScheduleEntry } from "../../ports/jobs-store.js";
import type { LogLine } from "../../ports/logs.js";
import { appendStateEvent } from "./redis-state-events.js";

const P = "slipway:";
const TOOLS = `${P}jobtools`;
const REQUESTS = `${P}jobrequests`;
/** Sorted set: `<tool>/<job>` of every local scheduled job, scored by its next fire time (ms; 0: to compute). */
const SCHEDULE = `${P}jobschedule`;
/** Hash: `<tool>/<job>` → the cron its SCHEDULE score was computed for. */
const SCHEDULE_CRON = `${P}jobschedulecron`;
/** Hash: `<tool>/<job>` → the definition of every local continuous job. */
const CONTINUOUS = `${P}jobcontinuous`;
/** Counter bumped with every change of CONTINUOUS: runners re-read that hash only when it moved. */
const CONTINUOUS_VERSION = `${P}jobcontinuous:version`;
const INDEX_KEYS = [SCHEDULE, SCHEDULE_CRON, CONTINUOUS, CONTINUOUS_VERSION] as const;

const defsKey = (tool: string) => `${P}jobs:${tool}`;
const statusKey = (tool: string, job: string) => `${P}jobstatus:${tool}:${job}`;
const runsKey = (tool: string, job: string) => `${P}jobruns:${tool}:${job}`;
const runKey = (tool: string, job: string, id: string) => `${P}jobrun:${tool}:${job}:${id}`;
const logKey = (tool: string, job: string, id: string) => `${P}joblog:${tool}:${job}:${id}`;

// Renews a claim only for its holder, so a slow runner cannot extend a claim another one took over;
// one answer for each of KEYS.
const CLAIM_ALL = `
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == false then redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) out[i] = 1
  elseif v == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2]) out[i] = 1
  else out[i] = 0 end
end
return out`;
// Writes of the runner that arrive after `jobs delete` must not bring the job's records back.
const HSET_IF_JOB = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return 1`;
const ADD_RUN_IF_JOB = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
redis.call('LPUSH', KEYS[3], ARGV[2])
return 1`;
const XADD_IF_RUN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV do redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[1], '*', 'l', ARGV[i]) end
return 1`;
// Keeps the indexes of one job in step with its stored definition (KEYS: defs, then INDEX_KEYS; ARGV: job
// name, member). Reading the definition here, not taking it from the caller, lets concurrent writers
// converge on the last one. A new cron (or a new job) is due at once with score 0: the runner computes it.
const INDEX = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local kind, cron = 'none', nil
if raw then
  local d = cjson.decode(raw)
  if d.runs_on ~= 'cluster' then
    if d.type == 'continuous' then kind = 'continuous'
    elseif d.type == 'scheduled' and type(d.cron) == 'string' then kind = 'scheduled' cron = d.cron end
  end
end
if kind == 'continuous' then
  if redis.call('HGET', KEYS[4], ARGV[2]) ~= raw then
    redis.call('HSET', KEYS[4], ARGV[2], raw)
    redis.call('INCR', KEYS[5])
  end
elseif redis.call('HDEL', KEYS[4], ARGV[2]) == 1 then redis.call('INCR', KEYS[5]) end
if kind == 'scheduled' then
  if redis.call('HGET', KEYS[3], ARGV[2]) ~= cron then
    redis.call('HSET', KEYS[3], ARGV[2], cron)
    redis.call('ZADD', KEYS[2], 0, ARGV[2])
  end
else
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return 1`;
const PUT = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[6], ARGV[4])
${INDEX}`;
// KEYS: SCHEDULE, SCHEDULE_CRON; ARGV: member, from score, cron, to score.
const MOVE = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[3] then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Jobs on Redis. Status and runs are hashes with one JSON-encoded value per field, so concurrent partial
 * updates (the log follower, the supervisor) merge with HSET instead of racing on a whole record. Run
 * logs are streams capped at KEPT_LINES_PER_RUN; a job keeps its KEPT_RUNS newest runs.
 */
export class RedisJobsStore implements JobsStore {
  private constructor(private readonly redis: Redis) {}

  static create(redis: Redis): RedisJobsStore {
    return new RedisJobsStore(redis);
  }

  async putJob(job: JobDefinition): Promise<void> {
    await this.redis.eval(
      PUT,
      6,
      defsKey(job.tool),
      ...INDEX_KEYS,
      TOOLS,
      job.name,
      member(job.tool, job.name),
      JSON.stringify(job),
      job.tool,
    );
  }

  async getJob(tool: string, name: string): Promise<JobDefinition | undefined> {
    const raw = await this.redis.hget(defsKey(tool), name);
    return raw === null ? undefined : (JSON.parse(raw) as JobDefinition);
  }

  async listJobs(tool: string): Promise<JobDefinition[]> {
    const all = await this.redis.hvals(defsKey(tool));
    return all.map((raw) => JSON.parse(raw) as JobDefinition).sort((a, b) => a.name.localeCompare(b.name));
  }

  async listAllJobs(): Promise<JobDefinition[]> {
    const tools = await this.redis.smembers(TOOLS);
    const lists = await Promise.all(tools.map((t) => this.listJobs(t)));
    return lists.flat();
  }

  async deleteJob(tool: string, name: string): Promise<void> {
    const ids = await this.redis.lrange(runsKey(tool, name), 0, -1);
    const m = this.redis
      .multi()
      .hdel(defsKey(tool), name)
      .del(statusKey(tool, name), runsKey(tool, name))
      .zrem(SCHEDULE, member(tool, name))
      .hdel(SCHEDULE_CRON, member(tool, name))
      .hdel(CONTINUOUS, member(tool, name))
      .incr(CONTINUOUS_VERSION);
    for (const id of ids) m.del(runKey(tool, name, id), logKey(tool, name, id));
    await m.exec();
  }

  /**
   * Takes every job of a deleted tool out of what the runners read (definitions, the continuous index
   * and the schedule), in one transaction; runs and logs go with the rest of the tool's state.
   */
  async forgetTool(tool: string): Promise<void> {
    const members = (await this.redis.hkeys(defsKey(tool))).map((name) => member(tool, name));
    const m = this.redis.multi().del(defsKey(tool)).srem(TOOLS, tool);
    if (members.length > 0) {
      m.zrem(SCHEDULE, ...members)
        .hdel(SCHEDULE_CRON, ...members)
        .hdel(CONTINUOUS, ...members)
        .incr(CONTINUOUS_VERSION);
    }
    await m.exec();
  }

  async listContinuousJobs(): Promise<JobDefinition[]> {
    const all = await this.redis.hvals(CONTINUOUS);
    return all.map((raw) => JSON.parse(raw) as JobDefinition);
  }

  async continuousVersion(): Promise<string> {
    return (await this.redis.get(CONTINUOUS_VERSION)) ?? "0";
  }

  async dueSchedules(now: Date, limit: number): Promise<ScheduleEntry[]> {
    const flat = await this.redis.zrangebyscore(
      SCHEDULE,
      "-inf",
      now.getTime(),
      "WITHSCORES",
      "LIMIT",
      0,
      limit,
    );
    const due: ScheduleEntry[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const m = flat[i]!;
      const slash = m.lastIndexOf("/");
      const score = Number(flat[i + 1]);
      due.push({
        tool: m.slice(0, slash),
        name: m.slice(slash + 1),
        at: score === 0 ? undefined : new Date(score),
      });
    }
    return due;
  }

  async moveSchedule(entry: ScheduleEntry, cron: string, to: Date): Promise<boolean> {
    const from = entry.at?.getTime() ?? 0;
    const moved = await this.redis.eval(
      MOVE,
      2,
      SCHEDULE,
      SCHEDULE_CRON,
      member(entry.tool, entry.name),
      String(from),
      cron,
      String(to.getTime()),
    );
    return moved === 1;
  }

  async indexAllJobs(): Promise<void> {
    for (const tool of await this.redis.smembers(TOOLS)) {
      const names = await this.redis.hkeys(defsKey(tool));
      const p = this.redis.pipeline();
      for (const name of names) p.eval(INDEX, 5, defsKey(tool), ...INDEX_KEYS, name, member(tool, name));
      for (const [error] of (await p.exec()) ?? []) if (error) throw error;
    }
  }

  async getStatus(tool: string, name: string): Promise<JobStatus | undefined> {
    const raw = await this.redis.hgetall(statusKey(tool, name));
    if (Object.keys(raw).length === 0) return undefined;
    return { ...INITIAL_STATUS, ...decode(raw) };
  }

  async updateStatus(tool: string, name: string, patch: Partial<JobStatus>): Promise<JobStatus> {
    const fields = encode(patch);
    if (fields.length > 0)
      await this.redis.eval(HSET_IF_JOB, 2, defsKey(tool), statusKey(tool, name), name, ...fields);
    return (await this.getStatus(tool, name)) ?? INITIAL_STATUS;
  }

  async addRun(run: JobRun): Promise<void> {
    const list = runsKey(run.tool, run.job);
    const added = await this.redis.eval(
      ADD_RUN_IF_JOB,
      3,
      defsKey(run.tool),
      runKey(run.tool, run.job, run.id),
      list,
      run.job,
      run.id,
      ...encode(run),
    );
    if (added !== 1) return;
    const dropped = await this.redis.lrange(list, KEPT_RUNS, -1);
    if (dropped.length === 0) return;
    const m = this.redis.multi().ltrim(list, 0, KEPT_RUNS - 1);
    for (const id of dropped) m.del(runKey(run.tool, run.job, id), logKey(run.tool, run.job, id));
    await m.exec();
  }

  async updateRun(tool: string, job: string, id: string, patch: Partial<JobRun>): Promise<void> {
    const key = runKey(tool, job, id);
    // A run trimmed away (or a job deleted) meanwhile is not brought back by a late update.
    if ((await this.redis.exists(key)) === 0) return;
    const fields = encode(patch);
    if (fields.length === 0) return;
    const multi = this.redis.multi().hset(key, ...fields);
    // A run's end is a state event (notifications follow it), written with the status it describes.
    if (patch.finished_at && patch.status !== undefined && patch.status !== "running")
      appendStateEvent(multi, {
        kind: "job",
        id,
        tool,
        job,
        status: patch.status,
        reason: patch.reason ?? undefined,
      });
    await multi.exec();
  }

  async getRun(tool: string, job: string, id: string): Promise<JobRun | undefined> {
    const raw = await this.redis.hgetall(runKey(tool, job, id));
    return Object.keys(raw).length === 0 ? undefined : (decode(raw) as unknown as JobRun);
  }

  async listRuns(tool: string, job: string, limit = KEPT_RUNS): Promise<JobRun[]> {
    const ids = await this.redis.lrange(runsKey(tool, job), 0, limit - 1);
    const runs = await Promise.all(ids.map((id) => this.getRun(tool, job, id)));
    return runs.filter((r): r is JobRun => r !== undefined);
  }

  async appendLog(tool: string, job: string, runId: string, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    await this.redis.eval(
      XADD_IF_RUN,
      2,
      runKey(tool, job, runId),
      logKey(tool, job, runId),
      String(KEPT_LINES_PER_RUN),
      ...lines,
    );
  }

  async readLog(tool: string, job: string, runId: string, after = "-"): Promise<LogLine[]> {
    const start = after === "-" ? "-" : `(${after}`;
    const entries = await this.redis.xrange(logKey(tool, job, runId), start, "+");
    return entries.map(([id, fields]) => ({ id, line: fields[1] ?? "" }));
  }

  async requestRun(request: RunRequest): Promise<void> {
    await this.redis.rpush(REQUESTS, JSON.stringify(request));
  }

  async takeRunRequests(): Promise<RunRequest[]> {
    const [[, items]] = (await this.redis.multi().lrange(REQUESTS, 0, -1).del(REQUESTS).exec()) as [
      [Error | null, string[]],
    ];
    return items.map((raw) => JSON.parse(raw) as RunRequest);
  }

  async claimAll(keys: readonly string[], owner: string, ttlMs: number): Promise<boolean[]> {
    if (keys.length === 0) return [];
    const held = (await this.redis.eval(
      CLAIM_ALL,
      keys.length,
      ...keys.map((k) => `${P}jobclaim:${k}`),
      owner,
      String(ttlMs),
    )) as number[];
    return held.map((h) => h === 1);
  }

  async release(key: string, owner: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, `${P}jobclaim:${key}`, owner);
  }
}

/** Job and tool names are RFC 1123 labels: no `/` in either. */
function member(tool: string, job: string): string {
  return `${tool}/${job}`;
}

function encode(record: object): string[] {
  return Object.entries(record)
    .filter(([, v]) => v !== undefined)
    .flatMap(([k, v]) => [k, JSON.stringify(v)]);
}

function decode(raw: Record<string, string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, JSON.parse(v) as unknown]));
}
