import { describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { AppRuntime, RunSpec, RunningApp } from "../../ports/runtime.js";
import type { Route, StateStore } from "../../ports/store.js";
import { testRelease } from "../../../test/helpers/releases.js";
import { deployerOnPodman } from "./podman-rollout.js";
import type { Release } from "./release.js";

const release = (id: string, createdAt: string, status: Release["status"]) =>
  testRelease(id, { status, created_at: createdAt, trigger: { kind: "envvars", ref: "refs/heads/main" } });

/** A deployer over in-memory fakes: every process starts and answers at once. */
function setup(releases: Release[], route: Route | undefined, env: Record<string, string>) {
  const records = new Map(releases.map((r) => [r.id, r]));
  let current = route;
  const started: RunSpec[] = [];
  const stopped: string[] = [];
  const running: RunningApp[] = [];
  const store = {
    getRelease: (id: string) => Promise.resolve(records.get(id)),
    updateRelease: (id: string, patch: Partial<Release>) => {
      const next = { ...records.get(id)!, ...patch };
      records.set(id, next);
      return Promise.resolve(next);
    },
    updateBuild: () => Promise.resolve({}),
    getBuild: () => Promise.resolve(undefined),
    getRoute: () => Promise.resolve(current),
    setRoute: (r: Route) => Promise.resolve(void (current = r)),
  } as unknown as StateStore;
  const runtime = {
    start: (spec: RunSpec) => {
      started.push(spec);
      const app = {
        id: `c-${spec.releaseId}`,
        tool: spec.tool,
        process: spec.process,
        releaseId: spec.releaseId,
      };
      const full = { ...app, address: { host: "127.0.0.1", port: 1 } };
      running.push(full);
      return Promise.resolve(full);
    },
    stop: (id: string) => Promise.resolve(void stopped.push(id)),
    list: () => Promise.resolve(running.filter((r) => !stopped.includes(r.id))),
    logs: () => Promise.resolve([]),
  } as unknown as AppRuntime;
  const deployer = deployerOnPodman({
    store,
    runtime,
    probe: { probe: () => Promise.resolve({ ok: true, detail: "HTTP 200" }) },
    logs: { append: () => Promise.resolve() } as unknown as BuildLogs,
    logger: memoryLogger(),
    options: { healthTimeoutS: 5, memoryMb: 256, drainMs: 0 },
    env: { envFor: () => Promise.resolve(env) },
  });
  return { deployer, records, started, stopped, route: () => current };
}

describe("Deployer and tool environment variables", () => {
  it("starts the web process with the tool's variables, read at start, and PORT from Slipway", async () => {
    const { deployer, started, route } = setup(
      [release("r1", "2026-01-01T00:00:00Z", "deploying")],
      undefined,
      {
        GREETING: "hi",
      },
    );
    await deployer.deploy("r1", new AbortController().signal);
    expect(started[0]!.env).toEqual({ GREETING: "hi", PORT: "8000" });
    expect(route()?.release_id).toBe("r1");
  });

  it("does not let an older release overtake a newer one that went live first", async () => {
    const older = release("old", "2026-01-01T00:00:00Z", "deploying");
    const newer = release("new", "2026-01-01T00:00:05Z", "live");
    const { deployer, records, started, route } = setup(
      [older, newer],
      { tool: "t", release_id: "new", host: "127.0.0.1", port: 2 },
      {},
    );
    await deployer.deploy("old", new AbortController().signal);
    expect(route()?.release_id).toBe("new");
    expect(records.get("old")).toMatchObject({ status: "superseded" });
    expect(records.get("old")!.reason).toContain("release new, made after this one, went live first");
    expect(records.get("new")!.status).toBe("live");
    // Checked before anything starts: the older release's web process never runs.
    expect(started).toEqual([]);
  });
});
