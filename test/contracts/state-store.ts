import { describe, expect, it, vi } from "vitest";
import type { Build } from "../../services/domain/builds/build.js";
import type { Release } from "../../services/domain/releases/release.js";
import type { Tool } from "../../services/domain/tools/tool.js";
import type { PageKey, PushIntake, StateStore } from "../../services/ports/store.js";

/**
 * What every StateStore must do, as the domain relies on it. Run against RedisStore
 * (test/store-contract.test.ts) and the in-memory fake (test/unit/memory-store.test.ts): a fake that
 * drifts from the real store fails here, not in a unit test that trusted it.
 *
 * `store()` is the store under test, shared by the file; every test uses its own tool names, so the
 * same Redis serves them all.
 */
export function stateStoreContract(name: string, store: () => StateStore): void {
  let n = 0;
  /** A tool name (and id prefix) no other test of this run uses. */
  const fresh = (what: string) => `${what}-${++n}-${Math.random().toString(36).slice(2, 8)}`;

  describe(`StateStore contract: ${name}`, () => {
    describe("tools", () => {
      it("creates a tool once, finds it by any of its secret hashes, and lists it", async () => {
        const t = tool(fresh("tool"));
        await store().createTool(t);
        expect(await store().getTool(t.name)).toEqual(t);
        await expect(store().createTool(t)).rejects.toMatchObject({ code: "conflict" });
        expect(await store().toolBySecretHash(t.webhook_secret_hash)).toEqual({
          tool: t.name,
          kind: "webhook",
        });
        expect(await store().toolBySecretHash(t.token_hash)).toEqual({ tool: t.name, kind: "token" });
        expect(await store().toolBySecretHash(`${t.name}-unknown`)).toBeUndefined();
        expect((await store().listTools()).map((x) => x.name)).toContain(t.name);
      });

      it("pages tools oldest first after a key: same-time tools in name order, also after one now gone", async () => {
        // 1990: earlier than every other tool of this file, so these four come first.
        const when = Date.UTC(1990, 0, 1);
        const p = fresh("page");
        const [a, b, c, d] = [`${p}-a`, `${p}-b`, `${p}-c`, `${p}-d`];
        for (const name of [c, a, b])
          await store().createTool({ ...tool(name), created_at: new Date(when).toISOString() });
        await store().createTool({ ...tool(d), created_at: new Date(when + 1000).toISOString() });
        const names = async (after: PageKey | undefined, limit: number) =>
          (await store().listToolsAfter(after, limit)).map((t) => t.name);
        expect(await names(undefined, 4)).toEqual([a, b, c, d]);
        expect(await names({ at: when, id: a }, 2)).toEqual([b, c]);
        expect(await names({ at: when, id: `${a}a` }, 3)).toEqual([b, c, d]);
        expect(await names({ at: when + 1000, id: d }, 5)).not.toContain(a);
      });

      it("patches a tool and tells its watchers before the write returns", async () => {
        const t = tool(fresh("tool"));
        await store().createTool(t);
        const heard: string[] = [];
        await store().watchTools((name) => heard.push(name));
        const patched = await store().updateTool(t.name, { deploy: { branches: ["dev"], tags: [] } });
        expect(patched).toEqual({ ...t, deploy: { branches: ["dev"], tags: [] } });
        expect(heard).toContain(t.name);
        expect(await store().getTool(t.name)).toEqual(patched);
      });

      it("refuses to patch a tool that does not exist", async () => {
        const missing = fresh("missing");
        await expect(store().updateTool(missing, {})).rejects.toMatchObject({
          code: "not_found",
          message: `tool "${missing}" does not exist`,
        });
        await expect(store().replaceSecretHash(missing, "token", "h")).rejects.toMatchObject({
          code: "not_found",
        });
      });

      it("replaces a secret: the new hash finds the tool, the old one no longer does", async () => {
        const t = tool(fresh("tool"));
        await store().createTool(t);
        const next = `${t.name}-token-2`;
        const updated = await store().replaceSecretHash(t.name, "token", next);
        expect(updated.token_hash).toBe(next);
        expect(await store().toolBySecretHash(next)).toEqual({ tool: t.name, kind: "token" });
        expect(await store().toolBySecretHash(t.token_hash)).toBeUndefined();
        expect(await store().toolBySecretHash(t.webhook_secret_hash)).toEqual({
          tool: t.name,
          kind: "webhook",
        });
      });
    });

    describe("builds", () => {
      it("lists a tool's builds newest first, up to the limit, and only that tool's", async () => {
        const name = fresh("tool");
        for (let i = 0; i < 4; i++)
          await store().createBuild(build(`${name}-b${i}`, name, { created_at: at(i) }));
        await store().createBuild(build(`${name}-other`, `${name}-x`, { created_at: at(9) }));
        const listed = await store().listBuilds(name, 3);
        expect(listed.map((b) => b.id)).toEqual([`${name}-b3`, `${name}-b2`, `${name}-b1`]);
        expect(await store().listBuilds(fresh("nobody"), 10)).toEqual([]);
      });

      it("pages a tool's builds newest first before a key: same-time builds in reverse id order, also before one now gone", async () => {
        const name = fresh("tool");
        for (const id of ["b1", "b3", "b2"])
          await store().createBuild(build(`${name}-${id}`, name, { created_at: at(5) }));
        await store().createBuild(build(`${name}-b0`, name, { created_at: at(1) }));
        const ids = async (before: PageKey | undefined, limit: number) =>
          (await store().listBuilds(name, limit, before)).map((b) => b.id.slice(name.length + 1));
        const t = Date.parse(at(5));
        expect(await ids(undefined, 10)).toEqual(["b3", "b2", "b1", "b0"]);
        expect(await ids({ at: t, id: `${name}-b3` }, 2)).toEqual(["b2", "b1"]);
        expect(await ids({ at: t, id: `${name}-b25` }, 10)).toEqual(["b2", "b1", "b0"]);
        expect(await ids({ at: Date.parse(at(1)), id: `${name}-b0` }, 10)).toEqual([]);
      });

      it("patches a build, keeping the fields the patch does not name", async () => {
        const b = build(fresh("b"), fresh("tool"));
        await store().createBuild(b);
        const patched = await store().updateBuild(b.id, {
          status: "failure",
          reason: "boom",
          phase: "build",
        });
        expect(patched).toEqual({ ...b, status: "failure", reason: "boom", phase: "build" });
        expect(await store().getBuild(b.id)).toEqual(patched);
        await expect(store().updateBuild(fresh("nope"), {})).rejects.toMatchObject({ code: "not_found" });
      });

      it("starts a build only while it is pending", async () => {
        const b = build(fresh("b"), fresh("tool"));
        await store().createBuild(b);
        const started = await store().startBuild(b.id, { status: "running", builder: "w1" });
        expect(started).toMatchObject({ status: "running", builder: "w1" });
        expect(await store().startBuild(b.id, { status: "running", builder: "w2" })).toBeUndefined();
        expect(await store().getBuild(b.id)).toMatchObject({ builder: "w1" });
      });

      it("lets one of two recoveries take over a running build: the one naming its builder", async () => {
        const b = build(fresh("b"), fresh("tool"), { status: "running", builder: "dead" });
        await store().createBuild(b);
        expect(await store().takeOverBuild(b.id, "other", { builder: "me" })).toBeUndefined();
        expect(await store().takeOverBuild(b.id, "dead", { builder: "me" })).toMatchObject({ builder: "me" });
        expect(await store().takeOverBuild(b.id, "dead", { builder: "late" })).toBeUndefined();
      });
    });

    describe("push intake", () => {
      it("queues a commit once; a second push of it answers with the first build", async () => {
        const name = fresh("tool");
        const first = build(`${name}-1`, name);
        expect(await store().intakePush(intake(first))).toEqual({ kind: "queued", superseded: undefined });
        expect(await store().getBuild(first.id)).toEqual(first);
        expect(await store().intakePush(intake(build(`${name}-2`, name)))).toEqual({
          kind: "duplicate",
          build_id: first.id,
        });
        expect((await store().listBuilds(name, 10)).map((b) => b.id)).toEqual([first.id]);
      });

      it("builds a commit again after releaseCommit, or with force", async () => {
        const name = fresh("tool");
        await store().intakePush(intake(build(`${name}-1`, name)));
        await store().releaseCommit(name, "web", COMMIT);
        expect(await store().intakePush(intake(build(`${name}-2`, name)))).toMatchObject({ kind: "queued" });
        expect(await store().intakePush({ ...intake(build(`${name}-3`, name)), force: true })).toMatchObject({
          kind: "queued",
        });
      });

      it("supersedes the component's waiting build, which frees its commit", async () => {
        const name = fresh("tool");
        const older = build(`${name}-1`, name);
        await store().intakePush(intake(older));
        const newer = build(`${name}-2`, name, { commit: "b".repeat(40), created_at: at(1) });
        expect(await store().intakePush(intake(newer))).toEqual({ kind: "queued", superseded: older.id });
        expect(await store().getBuild(older.id)).toMatchObject({ status: "superseded", reason: "replaced" });
        expect(
          await store().intakePush(intake(build(`${name}-3`, name, { created_at: at(2) }))),
        ).toMatchObject({
          kind: "queued",
          superseded: newer.id,
        });
      });

      it("does not supersede a build that already runs, nor another component's", async () => {
        const name = fresh("tool");
        const running = build(`${name}-1`, name);
        await store().intakePush(intake(running));
        await store().startBuild(running.id, { status: "running" });
        const next = build(`${name}-2`, name, { commit: "b".repeat(40) });
        expect(await store().intakePush(intake(next))).toEqual({ kind: "queued", superseded: undefined });
        const worker = build(`${name}-3`, name, { component: "worker", commit: "c".repeat(40) });
        expect(await store().intakePush(intake(worker))).toEqual({ kind: "queued", superseded: undefined });
        expect(await store().getBuild(next.id)).toMatchObject({ status: "pending" });
      });

      it("answers a redelivered webhook with what the first delivery got", async () => {
        const name = fresh("tool");
        const key = fresh("key");
        const first = { ...intake(build(`${name}-1`, name)), delivery: key };
        expect(await store().intakePush(first)).toMatchObject({ kind: "queued" });
        expect(await store().intakePush({ ...first, build: build(`${name}-2`, name) })).toEqual({
          kind: "redelivery",
          answer: "queued",
        });
        const other = { ...intake(build(`${name}-3`, name)), delivery: fresh("key") };
        expect(await store().intakePush(other)).toEqual({ kind: "duplicate", build_id: `${name}-1` });
        expect(await store().intakePush({ ...other, build: build(`${name}-4`, name) })).toEqual({
          kind: "redelivery",
          answer: `duplicate of ${name}-1`,
        });
      });
    });

    describe("deliveries", () => {
      it("remembers a delivery's first answer and lets it be replaced", async () => {
        const name = fresh("tool");
        expect(await store().rememberDelivery(name, "k", "first")).toBeUndefined();
        expect(await store().rememberDelivery(name, "k", "second")).toBe("first");
        await store().answerDelivery(name, "k", "final");
        expect(await store().rememberDelivery(name, "k", "third")).toBe("final");
        expect(await store().rememberDelivery(`${name}-other`, "k", "x")).toBeUndefined();
      });
    });

    describe("releases", () => {
      it("keeps releases newest first and patches them", async () => {
        const name = fresh("tool");
        for (let i = 0; i < 3; i++)
          await store().createRelease(release(`${name}-r${i}`, name, { created_at: at(i) }));
        expect((await store().listReleases(name, 2)).map((r) => r.id)).toEqual([`${name}-r2`, `${name}-r1`]);
        const patched = await store().updateRelease(`${name}-r1`, { status: "superseded" });
        expect(patched.status).toBe("superseded");
        expect(await store().getRelease(`${name}-r1`)).toEqual(patched);
        await expect(store().updateRelease(fresh("nope"), {})).rejects.toMatchObject({ code: "not_found" });
      });
    });

    describe("routes", () => {
      it("sets, replaces and deletes a route, telling watchers each time", async () => {
        const name = fresh("tool");
        const heard: string[] = [];
        await store().watchRoutes((t) => {
          if (t === name) heard.push(t);
        });
        const route = { tool: name, release_id: "r1", host: "127.0.0.1", port: 4000, upstreams: [] };
        await store().setRoute(route);
        expect(await store().getRoute(name)).toEqual(route);
        await store().setRoute({ ...route, release_id: "r2" });
        expect(await store().getRoute(name)).toMatchObject({ release_id: "r2" });
        await store().deleteRoute(name);
        expect(await store().getRoute(name)).toBeUndefined();
        await vi.waitFor(() => expect(heard).toHaveLength(3));
      });

      it("replaces a route only while it still names the expected release", async () => {
        const name = fresh("tool");
        const route = { tool: name, release_id: "r1", host: "127.0.0.1", port: 4000, upstreams: [] };
        expect(await store().replaceRoute(route, "r1")).toBe(false);
        expect(await store().getRoute(name)).toBeUndefined();
        await store().setRoute(route);
        expect(await store().replaceRoute({ ...route, port: 4001 }, "r1")).toBe(true);
        expect(await store().getRoute(name)).toMatchObject({ release_id: "r1", port: 4001 });
        // A rollout moved the route on meanwhile: the restart of r1's processes must not take it back.
        await store().setRoute({ ...route, release_id: "r2", port: 5000 });
        expect(await store().replaceRoute({ ...route, port: 4002 }, "r1")).toBe(false);
        expect(await store().getRoute(name)).toMatchObject({ release_id: "r2", port: 5000 });
      });
    });

    describe("records", () => {
      it("hands out copies: changing what a read returned changes nothing stored", async () => {
        const b = build(fresh("b"), fresh("tool"));
        await store().createBuild(b);
        const read = (await store().getBuild(b.id)) as { status: string };
        read.status = "success";
        expect(await store().getBuild(b.id)).toMatchObject({ status: "pending" });
      });
    });
  });
}

const COMMIT = "a".repeat(40);

function at(i: number): string {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
}

function tool(name: string): Tool {
  return {
    name,
    created_at: at(0),
    deploy: { branches: [], tags: [] },
    token_hash: `${name}-token`,
    webhook_secret_hash: `${name}-webhook`,
    redeploy_token_hash: `${name}-redeploy`,
  };
}

function build(id: string, toolName: string, extra: Partial<Build> = {}): Build {
  return {
    id,
    tool: toolName,
    component: "web",
    commit: COMMIT,
    ref: "refs/heads/main",
    source_url: "https://example.org/repo.git",
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status: "pending",
    created_at: at(0),
    ...extra,
  };
}

function release(id: string, toolName: string, extra: Partial<Release> = {}): Release {
  return {
    id,
    tool: toolName,
    component: "web",
    build_id: `b-${id}`,
    commit: COMMIT,
    image: "reg/t/web:c",
    image_digest: `sha256:${id}`,
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status: "live",
    created_at: at(0),
    ...extra,
  };
}

function intake(b: Build): PushIntake {
  return {
    build: b,
    force: false,
    queuedAnswer: "queued",
    duplicateAnswer: "duplicate of {{build}}",
    supersededReason: "replaced",
  };
}
