import { describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import type { EnvVar, EnvVarLimits, EnvVarStore, EnvVarWrite } from "../../ports/envvars.js";
import type { Route, StateStore } from "../../ports/store.js";
import type { Enqueuer } from "../../ports/queue.js";
import type { Release } from "../releases/release.js";
import { testRelease } from "../../../test/helpers/releases.js";
import { EnvVarService } from "./envvar-service.js";

class MemoryVars implements EnvVarStore {
  readonly values = new Map<string, string>();
  list(tool: string): Promise<EnvVar[]> {
    return Promise.resolve(
      [...this.values]
        .filter(([k]) => k.startsWith(`${tool}/`))
        .map(([k, value]) => ({ name: k.slice(tool.length + 1), value }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    );
  }
  get(tool: string, name: string) {
    return Promise.resolve(this.values.get(`${tool}/${name}`));
  }
  set(tool: string, name: string, value: string, limits: EnvVarLimits): Promise<EnvVarWrite> {
    const existed = this.values.has(`${tool}/${name}`);
    if (!existed && this.values.size >= limits.maxCount) return Promise.resolve("too_many");
    this.values.set(`${tool}/${name}`, value);
    return Promise.resolve(existed ? "updated" : "created");
  }
  delete(tool: string, name: string) {
    return Promise.resolve(this.values.delete(`${tool}/${name}`));
  }
}

const release = (id: string, status: Release["status"], kind: Release["trigger"]["kind"] = "git_push") =>
  testRelease(id, { status, trigger: { kind, ref: "refs/heads/main" } });

function setup(releases: Release[], route?: Route, waiting: string[] = []) {
  const created: Release[] = [];
  const updated = new Map<string, Partial<Release>>();
  const enqueued: { release_id: string }[] = [];
  const store = {
    getRoute: () => Promise.resolve(route),
    listReleases: () => Promise.resolve([...created].reverse().concat(releases)),
    getRelease: (id: string) => Promise.resolve(releases.find((r) => r.id === id)),
    createRelease: (r: Release) => Promise.resolve(void created.push(r)),
    updateRelease: (id: string, patch: Partial<Release>) => {
      updated.set(id, patch);
      return Promise.resolve({ ...releases.find((r) => r.id === id)!, ...patch });
    },
  } as unknown as StateStore;
  const queue: Enqueuer = {
    enqueue: (_name, payload) => Promise.resolve(void enqueued.push(payload as { release_id: string })),
    removeWaiting: (_name, id) => Promise.resolve(waiting.includes(id)),
  };
  const vars = new MemoryVars();
  const logger = memoryLogger();
  const service = new EnvVarService({ vars, store, queue, logger });
  return { service, vars, created, updated, enqueued, logger };
}

describe("EnvVarService", () => {
  it("stores a variable of a tool that never deployed without restarting anything", async () => {
    const { service, enqueued, logger } = setup([]);
    const change = await service.set("t", "GREETING", "s3cret-value", "token");
    expect(change).toMatchObject({ created: true, release_id: null });
    expect(change.message).toContain("next deployed");
    expect(enqueued).toEqual([]);
    expect(await service.envFor("t")).toEqual({ GREETING: "s3cret-value" });
    expect(JSON.stringify(logger.entries)).toContain("GREETING");
    expect(JSON.stringify(logger.entries)).not.toContain("s3cret-value");
  });

  it("restarts the live release as a new envvars release of the same image", async () => {
    const live = release("r1", "live");
    const { service, created, enqueued } = setup([live], { tool: "t", release_id: "r1", host: "h", port: 1 });
    const change = await service.set("t", "GREETING", "hi", "token");
    expect(created).toHaveLength(1);
    expect(change.release_id).toBe(created[0]!.id);
    expect(created[0]).toMatchObject({
      image_digest: "sha256:r1",
      build_id: "b-r1",
      status: "deploying",
      trigger: { kind: "envvars", ref: "refs/heads/main", actor: "token" },
      reason: "restart: environment variable GREETING created",
    });
    expect(enqueued).toEqual([{ build_id: "b-r1", release_id: created[0]!.id }]);
  });

  it("restarts a rollout underway rather than undoing it with the older live image", async () => {
    const { service, created } = setup([release("r2", "deploying"), release("r1", "live")], {
      tool: "t",
      release_id: "r1",
      host: "h",
      port: 1,
    });
    await service.set("t", "X", "1", "admin");
    expect(created[0]!.image_digest).toBe("sha256:r2");
  });

  it("replaces an env var restart still waiting in the queue instead of restarting twice", async () => {
    const live = release("r1", "live");
    const { service, created, updated } = setup([live], { tool: "t", release_id: "r1", host: "h", port: 1 });
    await service.set("t", "A", "1", "admin");
    const first = created[0]!;
    // The first restart is still waiting: created releases are listed as "deploying".
    const { service: again, updated: updated2 } = setup(
      [first, live],
      { tool: "t", release_id: "r1", host: "h", port: 1 },
      [first.id],
    );
    await again.set("t", "B", "2", "admin");
    expect(updated2.get(first.id)).toMatchObject({ status: "superseded" });
    expect(updated.size).toBe(0);
  });

  it("validates before writing and reports a missing variable as not found", async () => {
    const { service, vars } = setup([]);
    await expect(service.set("t", "PORT", "1", "admin")).rejects.toThrow(/PORT is set by Slipway/);
    await expect(service.set("t", "A", "x\ny", "admin")).rejects.toThrow(/line break/);
    expect(vars.values.size).toBe(0);
    await expect(service.get("t", "NOPE")).rejects.toMatchObject({ code: "not_found" });
    await expect(service.delete("t", "NOPE", "admin")).rejects.toMatchObject({ code: "not_found" });
  });
});
