import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { RedisToolSwitches } from "../services/adapters/store/redis-tool-state.js";
import { testJob } from "./helpers/jobs-api.js";
import { startRedis } from "./helpers/redis.js";

// `tools delete` first removes what would start the tool's processes again. The job runner does not
// read each tool's definitions: it reads the continuous jobs' index and the schedule's sorted set, so
// those must lose the tool's jobs too, or a deleted tool's worker is started again and its cron job
// read at every tick.
let server: Awaited<ReturnType<typeof startRedis>>;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

describe("deleting a tool's switches", () => {
  it("takes its jobs out of the runner's continuous index and schedule, and leaves other tools' alone", async () => {
    const jobs = RedisJobsStore.create(redis);
    const at = new Date("2026-12-01T00:00:00Z");
    for (const tool of ["gone", "kept"]) {
      await jobs.putJob(testJob(tool, "worker", at, { type: "continuous" }));
      await jobs.putJob(
        testJob(tool, "nightly", at, { type: "scheduled", schedule: "@daily", cron: "0 3 * * *" }),
      );
    }
    const versionBefore = await jobs.continuousVersion();

    await new RedisToolSwitches(redis).remove("gone");

    expect((await jobs.listContinuousJobs()).map((j) => `${j.tool}/${j.name}`)).toEqual(["kept/worker"]);
    const due = await jobs.dueSchedules(new Date("2100-01-01T00:00:00Z"), 100);
    expect(due.map((e) => `${e.tool}/${e.name}`)).toEqual(["kept/nightly"]);
    // Runners re-read the continuous index only when its version moved.
    expect(await jobs.continuousVersion()).not.toBe(versionBefore);
    expect(await jobs.listJobs("gone")).toEqual([]);
    expect((await jobs.listJobs("kept")).length).toBe(2);
  });
});
