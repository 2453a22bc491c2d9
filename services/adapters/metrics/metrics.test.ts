import { describe, expect, it } from "vitest";
import { parsePromText, valueOf } from "../../../test/helpers/prom-text.js";
import type { Build } from "../../domain/builds/build.js";
import type { Release } from "../../domain/releases/release.js";
import { deliveryOutcome } from "../../roles/http/metrics.js";
import { parseStats } from "../podman/stats.js";
import { METRICS, type MetricOp } from "./catalogue.js";
import { metricsOfEvent, phaseOps, releaseKind } from "./event-metrics.js";
import { exposition } from "./exposition.js";
import { fieldsOf, parseSnapshot } from "./redis-metrics.js";

const build = (patch: Partial<Build>): Build =>
  ({
    id: "b1",
    tool: "t",
    created_at: "2026-01-01T00:00:00.000Z",
    started_at: "2026-01-01T00:00:04.000Z",
    finished_at: "2026-01-01T00:01:04.000Z",
    ...patch,
  }) as Build;
const release = (kind: string): Release =>
  ({ id: "r1", trigger: { kind, ref: "main" } }) as unknown as Release;
const records = (b?: Build, r?: Release) => ({
  getBuild: () => Promise.resolve(b),
  getRelease: () => Promise.resolve(r),
});

/** What Redis's HINCRBYFLOAT would hold after `ops`, rendered as /metrics would, and parsed back. */
async function scrapeAfter(ops: MetricOp[]) {
  const hashes = { c: {} as Record<string, string>, h: {} as Record<string, string> };
  for (const op of ops) {
    const f = fieldsOf(op);
    for (let i = 0; i < f.length; i += 3) {
      const hash = hashes[f[i] as "c" | "h"];
      hash[f[i + 1]!] = String(Number(hash[f[i + 1]!] ?? 0) + Number(f[i + 2]));
    }
  }
  const { text } = await exposition(parseSnapshot(hashes.c, hashes.h), [
    { metric: METRICS.up, labels: { component: "redis" }, value: 1 },
  ]);
  return { text, samples: parsePromText(text).samples };
}

describe("state events as metrics", () => {
  it("a build starting observes its queue wait", async () => {
    const ops = await metricsOfEvent(
      { kind: "build", id: "b1", tool: "t", status: "running" },
      records(build({})),
    );
    expect(ops).toEqual([{ kind: "observe", metric: METRICS.queueWait, labels: {}, value: 4 }]);
  });

  it("a build that went live counts a success, its duration and push→live", async () => {
    const ops = await metricsOfEvent(
      { kind: "build", id: "b1", tool: "t", status: "success" },
      records(build({})),
    );
    const { samples } = await scrapeAfter(ops);
    expect(valueOf(samples, "slipway_builds_total", { outcome: "success" })).toBe(1);
    expect(valueOf(samples, "slipway_build_duration_seconds_sum", { outcome: "success" })).toBe(60);
    expect(valueOf(samples, "slipway_build_duration_seconds_bucket", { outcome: "success", le: "30" })).toBe(
      0,
    );
    expect(valueOf(samples, "slipway_build_duration_seconds_bucket", { outcome: "success", le: "60" })).toBe(
      1,
    );
    expect(
      valueOf(samples, "slipway_build_duration_seconds_bucket", { outcome: "success", le: "+Inf" }),
    ).toBe(1);
    expect(valueOf(samples, "slipway_push_to_live_seconds_sum")).toBe(64);
  });

  it("a failed build has no push→live; a build deleted since still counts", async () => {
    const failed = await metricsOfEvent(
      { kind: "build", id: "b1", tool: "t", status: "failure" },
      records(build({})),
    );
    expect(failed.map((o) => o.metric.name)).toEqual([
      "slipway_builds_total",
      "slipway_build_duration_seconds",
    ]);
    const gone = await metricsOfEvent({ kind: "build", id: "b1", tool: "t", status: "cancelled" }, records());
    expect(gone).toEqual([{ kind: "count", metric: METRICS.builds, labels: { outcome: "cancelled" } }]);
    expect(
      await metricsOfEvent({ kind: "build", id: "b1", tool: "t", status: "deploying" }, records()),
    ).toEqual([]);
  });

  it("releases count as deploys, rollbacks or restarts; only when they end", async () => {
    const ev = (status: "live" | "failed" | "deploying") =>
      ({ kind: "release", id: "r1", tool: "t", build_id: "b1", status }) as const;
    expect((await metricsOfEvent(ev("live"), records(undefined, release("rollback"))))[0]?.labels).toEqual({
      kind: "rollback",
      outcome: "live",
    });
    expect((await metricsOfEvent(ev("failed"), records(undefined, release("git_push"))))[0]?.labels).toEqual({
      kind: "deploy",
      outcome: "failed",
    });
    expect(await metricsOfEvent(ev("deploying"), records(undefined, release("git_push")))).toEqual([]);
    expect(releaseKind(release("envvars"))).toBe("restart");
    expect(releaseKind(release("restart"))).toBe("restart");
  });

  it("job runs count by tool, job and outcome when they end", async () => {
    const ev = (status: "failed" | "running") =>
      ({ kind: "job", id: "j", tool: "t", job: "nightly", status }) as const;
    const { samples } = await scrapeAfter([
      ...(await metricsOfEvent(ev("failed"), records())),
      ...(await metricsOfEvent(ev("failed"), records())),
      ...(await metricsOfEvent(ev("running"), records())),
    ]);
    expect(valueOf(samples, "slipway_job_runs_total", { tool: "t", job: "nightly", outcome: "failed" })).toBe(
      2,
    );
    expect(samples.filter((s) => s.name === "slipway_job_runs_total")).toHaveLength(1);
  });

  it("phase timings become the phase histogram in seconds, without the total", async () => {
    const { samples } = await scrapeAfter(phaseOps({ fetch: 200, build: 42_000, total: 42_200 }));
    expect(valueOf(samples, "slipway_build_phase_duration_seconds_sum", { phase: "fetch" })).toBe(0.2);
    expect(
      valueOf(samples, "slipway_build_phase_duration_seconds_bucket", { phase: "build", le: "30" }),
    ).toBe(0);
    expect(
      valueOf(samples, "slipway_build_phase_duration_seconds_bucket", { phase: "build", le: "60" }),
    ).toBe(1);
    expect(samples.some((s) => s.labels.phase === "total")).toBe(false);
  });
});

describe("the exposition", () => {
  it("declares every metric with its type, even before anything happened", async () => {
    const { text, samples } = await scrapeAfter([]);
    for (const def of Object.values(METRICS)) expect(text).toContain(`# TYPE ${def.name} ${def.kind}`);
    expect(valueOf(samples, "slipway_up", { component: "redis" })).toBe(1);
  });
});

describe("webhook outcomes and podman stats", () => {
  it("maps answers to outcomes", () => {
    expect([202, 200, 401, 403, 429, 400, 413, 500, 503].map(deliveryOutcome)).toEqual([
      "accepted",
      "not_built",
      "unauthorized",
      "unauthorized",
      "rate_limited",
      "rejected",
      "rejected",
      "error",
      "error",
    ]);
  });

  it("reads podman's template lines and skips anything else", () => {
    expect(
      parseStats("abc 1.5 1048576 268435456\n\nwarning: something\ndef 0 2048 4096\nghi 1 2\njkl x 1 2\n"),
    ).toEqual([
      { id: "abc", cpuPercent: 1.5, memoryBytes: 1048576, memoryLimitBytes: 268435456 },
      { id: "def", cpuPercent: 0, memoryBytes: 2048, memoryLimitBytes: 4096 },
    ]);
  });
});
