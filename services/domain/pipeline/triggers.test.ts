import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../../test/fakes/memory-store.js";
import { memoryLogger } from "../../platform/logger.js";
import type { Tool } from "../tools/tool.js";
import { BuildControl } from "./build-control.js";
import type { Enqueuer } from "../../ports/queue.js";
import { TriggerService, type PushEvent } from "./triggers.js";

// What a push decides (deploy policy, one build per commit, superseding, redelivery, cancel) on the
// in-memory store: the decisions test/webhook-intake.test.ts checks on Redis under races, in milliseconds.

const sha = (n: number) => n.toString(16).padStart(40, "a");

async function setUp(deploy: Tool["deploy"] = { branches: [], tags: [] }) {
  const store = new MemoryStore();
  const tool: Tool = {
    name: "t",
    created_at: new Date().toISOString(),
    deploy,
    token_hash: "th",
    webhook_secret_hash: "wh",
    redeploy_token_hash: "rh",
  };
  await store.createTool(tool);
  const triggers = new TriggerService(store, memoryLogger());
  const push = async (commit: string | null, extra: Partial<PushEvent> = {}) =>
    triggers.push({
      tool: (await store.getTool("t"))!,
      ref: "refs/heads/main",
      commit,
      sourceUrl: "https://example.org/t.git",
      defaultBranch: "main",
      trigger: { kind: "gitlab_push", ref: "refs/heads/main" },
      ...extra,
    });
  return { store, push };
}

describe("a push", () => {
  it("to the default branch queues a build and remembers where the tool's source is", async () => {
    const { store, push } = await setUp();
    const answer = await push(sha(1));
    expect(answer).toMatchObject({ status: "queued", commit: sha(1) });
    const id = (answer as { build_id: string }).build_id;
    expect(store.queued).toEqual([id]);
    expect(await store.getBuild(id)).toMatchObject({ status: "pending", phase: "queued", tool: "t" });
    expect((await store.getTool("t"))?.source).toEqual({
      url: "https://example.org/t.git",
      ref: "refs/heads/main",
      default_branch: "main",
    });
  });

  it("to another branch, a deleted ref or a short commit id queues nothing and says why", async () => {
    const { store, push } = await setUp();
    expect(await push(sha(1), { ref: "refs/heads/feature" })).toMatchObject({ status: "ignored" });
    expect(await push(null)).toEqual({
      status: "ignored",
      reason: "refs/heads/main was deleted; nothing to build",
    });
    expect(await push("abc123")).toEqual({ status: "ignored", reason: '"abc123" is not a full commit id' });
    expect(store.queued).toEqual([]);
  });

  it("of a commit built before answers with that build, unless forced (or --no-cache)", async () => {
    const { store, push } = await setUp();
    const first = (await push(sha(1))) as { build_id: string };
    const again = await push(sha(1));
    expect(again).toMatchObject({ status: "duplicate", build_id: first.build_id });
    expect((again as { reason: string }).reason).toContain("use build start --force to build it again");
    expect(await push(sha(1), { force: true })).toMatchObject({ status: "queued" });
    expect(await push(sha(1), { noCache: true })).toMatchObject({ status: "queued" });
    expect(await store.listBuilds("t", 10)).toHaveLength(3);
  });

  it("takes the waiting build of the same component off the queue, marked superseded", async () => {
    const { store, push } = await setUp();
    const older = (await push(sha(1))) as { build_id: string };
    const newer = (await push(sha(2))) as { build_id: string };
    expect(store.queued).toEqual([newer.build_id]);
    expect(await store.getBuild(older.build_id)).toMatchObject({
      status: "superseded",
      reason: expect.stringMatching(new RegExp(`^superseded by build ${newer.build_id} `)),
    });
    // The superseded build freed its commit: pushing it again builds it.
    expect(await push(sha(1))).toMatchObject({ status: "queued" });
  });

  it("redelivered by GitLab (same Idempotency-Key) gets the first answer and starts nothing", async () => {
    const { store, push } = await setUp();
    const first = (await push(sha(1), { delivery: "k1" })) as { build_id: string };
    expect(await push(sha(1), { delivery: "k1" })).toMatchObject({
      status: "duplicate",
      build_id: first.build_id,
      redelivery: true,
    });
    expect(store.queued).toEqual([first.build_id]);
  });
});

describe("build cancel", () => {
  const queue: Enqueuer = { enqueue: () => Promise.resolve(), removeWaiting: () => Promise.resolve(true) };

  it("ends a waiting build and frees its commit; a second cancel says it already ended", async () => {
    const { store, push } = await setUp();
    const { build_id } = (await push(sha(1))) as { build_id: string };
    const control = new BuildControl(store, queue);
    expect(await control.cancel(build_id)).toMatchObject({
      status: "cancelled",
      reason: "cancelled by request",
    });
    expect(await push(sha(1))).toMatchObject({ status: "queued" });
    await expect(control.cancel(build_id)).rejects.toMatchObject({
      code: "conflict",
      message: `build ${build_id} already ended (cancelled)`,
    });
  });

  it("refuses a deploying build, saying what to do instead", async () => {
    const { store, push } = await setUp();
    const { build_id } = (await push(sha(1))) as { build_id: string };
    await store.updateBuild(build_id, { status: "deploying", release_id: "r1" });
    await expect(new BuildControl(store, queue).cancel(build_id)).rejects.toThrow(
      `build ${build_id} is deploying release r1 and cannot be cancelled; wait for its outcome`,
    );
    await expect(new BuildControl(store, queue).cancel("nope")).rejects.toMatchObject({ code: "not_found" });
  });
});
