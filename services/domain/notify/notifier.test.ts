import { describe, expect, it } from "vitest";
import { MemoryNotifyStore } from "../../../test/fakes/memory-notify.js";
import { memoryLogger } from "../../platform/logger.js";
import type { MailMessage } from "../../ports/notify.js";
import type { NotifyChannel } from "../../ports/notify-channel.js";
import type { EventDelivery, StateEvent } from "../../ports/state-events.js";
import type { Build } from "../builds/build.js";
import type { JobDefinition } from "../jobs/job.js";
import type { Release } from "../releases/release.js";
import { mailChannel, webhookChannel } from "./channels.js";
import { Notifier } from "./notifier.js";

const HOUR = 3600_000;

function setup(options: { failMail?: () => boolean; more?: readonly NotifyChannel[] } = {}) {
  const store = new MemoryNotifyStore();
  const mails: MailMessage[] = [];
  const posts: string[] = [];
  const builds = new Map<string, Partial<Build>>();
  const releases = new Map<string, Partial<Release>>();
  const jobs = new Map<string, string>();
  let clock = 0;
  const notifier = new Notifier({
    events: { consume: () => Promise.resolve(), close: () => Promise.resolve() },
    store,
    channels: [
      mailChannel(store, {
        send: (m) => {
          if (options.failMail?.()) return Promise.reject(new Error("451 try again later"));
          mails.push(m);
          return Promise.resolve();
        },
        close: () => Promise.resolve(),
      }),
      webhookChannel(store, {
        post: (_url, _secret, body) => {
          posts.push(body);
          return Promise.resolve();
        },
      }),
      ...(options.more ?? []),
    ],
    getBuild: (id) => Promise.resolve(builds.get(id) as Build | undefined),
    getRelease: (id) => Promise.resolve(releases.get(id) as Release | undefined),
    getJob: (_tool, name) =>
      Promise.resolve(
        jobs.has(name) ? ({ extra: { emails: jobs.get(name) } } as unknown as JobDefinition) : undefined,
      ),
    getRun: () => Promise.resolve(undefined),
    runLog: () => Promise.resolve([]),
    secretsOf: () => Promise.resolve([]),
    publicUrl: "http://slipway.test",
    logger: memoryLogger(),
    now: () => clock,
  });
  let seq = 0;
  const deliver = (event: StateEvent, id = `${++seq}-0`, attempt = 1) =>
    notifier.handle(event, { id, attempt } satisfies EventDelivery);
  const jobFailed = (job: string) =>
    deliver({
      kind: "job",
      id: `run${++seq}`,
      tool: "t",
      job,
      status: "failed",
      reason: "exited with code 1",
    });
  return {
    store,
    mails,
    posts,
    builds,
    releases,
    jobs,
    notifier,
    deliver,
    jobFailed,
    advance: (ms: number) => (clock += ms),
  };
}

describe("Notifier", () => {
  it("tells a registered channel too, only for tools it has a target for, once per event", async () => {
    const said: string[] = [];
    const chat: NotifyChannel = {
      name: "chat",
      target: (tool) =>
        Promise.resolve(
          tool === "t"
            ? { send: (n, key) => Promise.resolve(void said.push(`${key} ${n.subject}`)) }
            : undefined,
        ),
      close: () => Promise.resolve(),
    };
    const s = setup({ more: [chat] });
    s.builds.set("b1", { id: "b1", phase: "build", reason: "compile error" });
    s.builds.set("b2", { id: "b2", phase: "build", reason: "compile error" });
    const event: StateEvent = { kind: "build", id: "b1", tool: "t", status: "failure" };
    await s.deliver(event, "7-0");
    await s.deliver(event, "7-0", 2);
    await s.deliver({ kind: "build", id: "b2", tool: "other", status: "failure" }, "8-0");
    expect(said).toEqual(["7-0 build b1 failed (build)"]);
    expect(await s.store.delivered("7-0:chat")).toBe(true);
    // No recipients and no webhook: nothing was mailed or posted.
    expect([s.mails, s.posts]).toEqual([[], []]);
  });

  it("mails a failed deploy once: the release's event, not its build's", async () => {
    const s = setup();
    await s.store.addRecipient("t", "ada@example.org");
    s.builds.set("b1", { id: "b1", phase: "deploy", reason: "deploy failed" });
    s.releases.set("r1", {
      id: "r1",
      build_id: "b1",
      reason: "health check failed: HTTP 500",
      log_tail: ["boom"],
    });
    await s.deliver({ kind: "build", id: "b1", tool: "t", status: "failure" });
    await s.deliver({ kind: "release", id: "r1", tool: "t", build_id: "b1", status: "failed" });
    expect(s.mails.map((m) => m.subject)).toEqual(["[slipway] t: deploy of release r1 failed"]);
    expect(s.mails[0]!.text).toContain("health check failed: HTTP 500");
  });

  it("mails a rollback when it is live, and not an ordinary release going live", async () => {
    const s = setup();
    await s.store.addRecipient("t", "ada@example.org");
    s.releases.set("r2", { id: "r2", build_id: "b1" });
    s.releases.set("r3", { id: "r3", build_id: "b1", rollback_of: "r1" });
    await s.deliver({ kind: "release", id: "r2", tool: "t", build_id: "b1", status: "live" });
    await s.deliver({ kind: "release", id: "r3", tool: "t", build_id: "b1", status: "live" });
    expect(s.mails.map((m) => m.subject)).toEqual([
      "[slipway] t: rolled back: release r3 runs release r1 again",
    ]);
  });

  it("a redelivered event is not sent again; a channel that failed is retried without repeating the other", async () => {
    let failing = true;
    const s = setup({ failMail: () => failing });
    await s.store.addRecipient("t", "ada@example.org");
    await s.store.setWebhook("t", { url: "https://chat.example.org/", secret: "sln_x" });
    s.builds.set("b1", { id: "b1", phase: "build", reason: "compile error" });
    const event: StateEvent = { kind: "build", id: "b1", tool: "t", status: "failure" };
    await expect(s.deliver(event, "7-0")).rejects.toThrow("451");
    expect(s.posts).toHaveLength(1);
    failing = false;
    await s.deliver(event, "7-0", 2);
    await s.deliver(event, "7-0", 3);
    expect(s.mails).toHaveLength(1);
    expect(s.posts).toHaveLength(1);
  });

  it("batches a job's repeated failures: one mail at once, the rest counted into one mail an hour later", async () => {
    const s = setup();
    await s.store.addRecipient("t", "ada@example.org");
    s.jobs.set("sync", "onfailure");
    s.jobs.set("silent", "none");
    for (let i = 0; i < 6; i++) await s.jobFailed("sync");
    await s.jobFailed("silent");
    await s.notifier.sweep();
    expect(s.mails.map((m) => m.subject)).toEqual(["[slipway] t: job sync failed"]);

    s.advance(HOUR - 1);
    await s.notifier.sweep();
    expect(s.mails).toHaveLength(1);
    s.advance(1);
    await s.notifier.sweep();
    await s.notifier.sweep();
    expect(s.mails).toHaveLength(2);
    expect(s.mails[1]!.subject).toBe("[slipway] t: job sync failed 5 times since 1970-01-01T00:00:00.000Z");
    expect(s.mails[1]!.text).toContain("Runs: 5 failed, 0 succeeded");

    // Within the next hour a failure is counted, not mailed; after a quiet hour the next one goes at once.
    await s.jobFailed("sync");
    expect(s.mails).toHaveLength(2);
    s.advance(HOUR);
    await s.notifier.sweep();
    expect(s.mails[2]!.subject).toBe("[slipway] t: job sync failed 1 time since 1970-01-01T01:00:00.000Z");
    s.advance(2 * HOUR);
    await s.jobFailed("sync");
    expect(s.mails[3]!.subject).toBe("[slipway] t: job sync failed");
  });

  it("a redelivered job event counts once", async () => {
    const s = setup();
    await s.store.addRecipient("t", "ada@example.org");
    s.jobs.set("sync", "onfailure");
    await s.jobFailed("sync");
    const again: StateEvent = { kind: "job", id: "runX", tool: "t", job: "sync", status: "failed" };
    await s.deliver(again, "99-0");
    await s.deliver(again, "99-0", 2);
    s.advance(HOUR);
    await s.notifier.sweep();
    expect(s.mails[1]!.text).toContain("Runs: 1 failed, 0 succeeded");
  });
});
