import { beforeEach, describe, expect, it } from "vitest";
import { MemoryRollout, routeOf } from "../../../test/fakes/memory-rollout.js";
import { MemoryStore } from "../../../test/fakes/memory-store.js";
import { testBuildOf, testRelease } from "../../../test/helpers/releases.js";
import { PipelineError } from "../../platform/errors.js";
import { memoryLogger } from "../../platform/logger.js";
import type { BuildLogs } from "../../ports/logs.js";
import { Deployer } from "./deployer.js";
import type { Release } from "./release.js";

// The one deploy routine over an in-memory runtime (test/fakes/memory-rollout.ts): what a user reads in
// `releases`, `build show` and the deploy log, whatever runtime runs the processes.

let store: MemoryStore;
let rollout: MemoryRollout;
let lines: Map<string, string[]>;
let live: string[];

function deployer(env: Record<string, string> = {}): Deployer {
  const logs = {
    append: (id: string, line: string) => {
      lines.set(id, [...(lines.get(id) ?? []), line]);
      return Promise.resolve();
    },
  } as unknown as BuildLogs;
  return new Deployer({
    store,
    rollout,
    logs,
    logger: memoryLogger(),
    env: { envFor: () => Promise.resolve(env) },
    onLive: (release) => Promise.resolve(void live.push(release.id)),
  });
}

/** A release of tool `t` and, for a push, its build, still deploying as the pipeline leaves it. */
async function deploying(id: string, at: number, extra: Partial<Release> = {}): Promise<Release> {
  const release = testRelease(id, {
    status: "deploying",
    created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, at)).toISOString(),
    ...extra,
  });
  if (!(await store.getBuild(release.build_id))) {
    await store.createBuild(testBuildOf(release, "deploying"));
  }
  await store.createRelease(release);
  return release;
}

const signal = new AbortController().signal;

beforeEach(() => {
  store = new MemoryStore();
  rollout = new MemoryRollout();
  lines = new Map();
  live = [];
});

describe("Deployer (one deploy routine)", () => {
  it("switches the route once the new processes are ready, then retires the old ones", async () => {
    const old = await deploying("r1", 0);
    await deployer().deploy(old.id, signal);
    const next = await deploying("r2", 1);
    await deployer({ GREETING: "hi", PORT: "1" }).deploy(next.id, signal);

    expect(await store.getRoute("t")).toEqual(routeOf(next));
    expect(await store.getRelease("r2")).toMatchObject({ status: "live", last_probe: "ready" });
    expect(await store.getRelease("r1")).toMatchObject({ status: "superseded" });
    expect(await store.getBuild(next.build_id)).toMatchObject({ status: "success" });
    expect([...rollout.running]).toEqual(["r2"]);
    expect(rollout.steps.slice(-3)).toEqual(["start r2", "switch r2", "retire r2"]);
    // PORT is the runtime's to set, never a tool variable's.
    expect(rollout.vars.get("r2")).toEqual({ GREETING: "hi" });
    expect(live).toEqual(["r1", "r2"]);
    expect(lines.get(next.build_id)?.at(-1)).toBe("===> LIVE: release r2 serves t");
  });

  it("a restart that goes live during an older release's rollout is not rolled back by it", async () => {
    // A push's release is rolling out when `webservice restart` makes a release of the same build
    // (deploys run two at a time): the restart goes live first; the push's release must not switch
    // the tool back to itself when its own processes get ready.
    const push = await deploying("r1", 0);
    const restart = testRelease("r2", {
      status: "deploying",
      created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, 5)).toISOString(),
      build_id: push.build_id,
      restart_of: push.id,
      trigger: { kind: "restart", ref: "refs/heads/main", actor: "maintainer" },
    });
    await store.createRelease(restart);
    rollout.whileStarting = async (release) => {
      if (release.id === push.id) await deployer().deploy(restart.id, signal);
    };

    await deployer().deploy(push.id, signal);

    expect(await store.getRoute("t")).toEqual(routeOf(restart));
    expect(await store.getRelease("r2")).toMatchObject({ status: "live" });
    expect(await store.getRelease("r1")).toMatchObject({
      status: "superseded",
      reason: "release r2, made after this one, went live first",
    });
    expect(rollout.steps).not.toContain("switch r1");
    expect([...rollout.running]).toEqual(["r2"]);
    // The push did go live, as its restart.
    expect(await store.getBuild(push.build_id)).toMatchObject({
      status: "success",
      reason: "live as release r2",
    });
  });

  it("an older release does not start anything while a newer one is live", async () => {
    const older = await deploying("r1", 0);
    const newer = await deploying("r2", 5, { trigger: { kind: "envvars", ref: "refs/heads/main" } });
    await deployer().deploy(newer.id, signal);
    await deployer().deploy(older.id, signal);

    expect(await store.getRoute("t")).toEqual(routeOf(newer));
    expect(await store.getRelease("r1")).toMatchObject({ status: "superseded" });
    expect(rollout.steps.filter((s) => s.endsWith("r1"))).toEqual([]);
  });

  it("a failing release phase fails the release before anything starts, with its output", async () => {
    await deployer().deploy((await deploying("r1", 0)).id, signal);
    const next = await deploying("r2", 1, { processes: ["web", "release"] });
    rollout.releasePhaseOutput = ["migrating", "no database"];
    rollout.releasePhaseResult = { code: 3, timedOut: false, tail: ["migrating", "no database"] };
    await deployer().deploy(next.id, signal);

    expect(await store.getRelease("r2")).toMatchObject({
      status: "failed",
      reason: "release phase exited 3; the previous release keeps serving",
      log_tail: ["migrating", "no database"],
    });
    expect(await store.getRoute("t")).toEqual(routeOf({ id: "r1", tool: "t" }));
    expect(rollout.steps).not.toContain("start r2");
    const log = lines.get(next.build_id) ?? [];
    expect(log).toContain("===> RELEASE PHASE: running the Procfile's release process");
    expect(log).toContain("  | no database");
    expect(log.at(-1)).toBe("===> DEPLOY FAILED: release phase exited 3; the previous release keeps serving");
  });

  it("a rollback runs the old image as it was, without the release phase", async () => {
    const release = await deploying("r1", 0, {
      processes: ["web", "release"],
      trigger: { kind: "rollback", ref: "refs/heads/main" },
      rollback_of: "r0",
    });
    await deployer().deploy(release.id, signal);
    expect(await store.getRelease("r1")).toMatchObject({ status: "live" });
    expect(rollout.steps).not.toContain("release phase r1");
    expect(lines.get("r1")?.[0]).toContain(": rollback to release r0, no build");
  });

  it("processes that never get ready are removed and the release fails with what was seen", async () => {
    rollout.startFailure = new PipelineError(
      "deploy_failed",
      "web process exited before it answered on port 8000",
      {
        details: { phase: "deploy", log_tail: ["Error: boom"], last_probe: "ECONNREFUSED" },
      },
    );
    const release = await deploying("r1", 0);
    await deployer().deploy(release.id, signal);

    expect(await store.getRelease("r1")).toMatchObject({
      status: "failed",
      reason: "web process exited before it answered on port 8000; nothing was serving before",
      last_probe: "ECONNREFUSED",
      log_tail: ["Error: boom"],
    });
    expect(await store.getRoute("t")).toBeUndefined();
    expect(rollout.running.size).toBe(0);
    expect(await store.getBuild(release.build_id)).toMatchObject({ status: "failure", phase: "deploy" });
  });

  it("a runtime's report that says what keeps serving is not contradicted", async () => {
    await deployer().deploy((await deploying("r1", 0)).id, signal);
    rollout.startFailure = new PipelineError(
      "deploy_failed",
      "Deployment web did not roll out within 60 s; the previous pods keep serving\n  pod web-2: CrashLoopBackOff",
    );
    await deployer().deploy((await deploying("r2", 1)).id, signal);
    expect((await store.getRelease("r2"))?.reason).toBe(
      "Deployment web did not roll out within 60 s; the previous pods keep serving\n  pod web-2: CrashLoopBackOff",
    );
  });
});
