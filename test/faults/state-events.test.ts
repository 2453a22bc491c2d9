import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitlabStatusReporter } from "../../services/adapters/gitlab/status-reporter.js";
import { RedisForgeLinks } from "../../services/adapters/store/redis-forge-links.js";
import { RedisStateEvents, STATE_EVENTS_STREAM } from "../../services/adapters/store/redis-state-events.js";
import { RedisStore } from "../../services/adapters/store/redis-store.js";
import type { Build } from "../../services/domain/builds/build.js";
import { StatusNotifier } from "../../services/domain/gitlab/status-notifier.js";
import { CryptoBox } from "../../services/platform/crypto-box.js";
import type { CommitStatusReporter } from "../../services/ports/forge.js";
import type { StateEvents } from "../../services/ports/state-events.js";
import { waitFor } from "../helpers/apps.js";
import { GitlabDouble, gitlabPushBuild } from "../helpers/gitlab-double.js";
import { capturedLogger } from "../helpers/local-server.js";
import { startRedis } from "../helpers/redis.js";

/**
 * The durable state events behind GitLab commit statuses, with real Redis, the real store and notifier,
 * and the GitLab double: several notifiers share one consumer group, so each event is handled (and each
 * status posted) once however many API processes run; and an event whose handler died before it was
 * acknowledged is taken over by another consumer and posted, not lost.
 */
const TOKEN = "glpat-state-events-0123456789";
const PROJECT_ID = 91;
const PROJECT_PATH = "tools/events";
const TOOL = "events-tool";
const GROUP = "gitlab-statuses";
const log = capturedLogger("debug");

let redis: Awaited<ReturnType<typeof startRedis>>;
let raw: Redis;
let store: RedisStore;
let links: RedisForgeLinks;
let gitlab: GitlabDouble;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url);
  store = RedisStore.create(redis.url);
  links = new RedisForgeLinks(raw, CryptoBox.fromKey(randomBytes(32)));
  gitlab = await GitlabDouble.start();
  gitlab.addProject({ id: PROJECT_ID, path: PROJECT_PATH });
  gitlab.addToken(TOKEN, { role: "maintainer" });
  await links.put({
    tool: TOOL,
    gitlab_url: gitlab.url,
    project_id: PROJECT_ID,
    project_path: PROJECT_PATH,
    http_url: `${gitlab.url}/${PROJECT_PATH}.git`,
    web_url: `${gitlab.url}/${PROJECT_PATH}`,
    default_branch: "main",
    hook_id: 1,
    deploy_token_id: 2,
    deploy_token_username: "gitlab+deploy-token-2",
    deploy_token: "gldt-state-events",
    access_token: TOKEN,
    linked_at: new Date().toISOString(),
  });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await gitlab?.close();
  await store?.close();
  await raw?.quit();
  await redis?.stop();
});

/** The real reporter, retrying quickly. */
const gitlabReporter = (link: { gitlab_url: string; access_token: string }): CommitStatusReporter =>
  GitlabStatusReporter.create({
    host: link.gitlab_url,
    token: link.access_token,
    allowHosts: [new URL(link.gitlab_url).host],
    logger: log.logger,
    retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 },
  });

/** One API process's notifier; `handled` records the stream ids of the events its consumer was given. */
async function startNotifier(options: { claimIdleMs?: number; reporter?: () => CommitStatusReporter } = {}) {
  const events = RedisStateEvents.create(redis.url, {
    group: GROUP,
    from: "all",
    logger: log.logger,
    blockMs: 200,
    claimIdleMs: options.claimIdleMs ?? 60_000,
  });
  const handled: string[] = [];
  const counted: StateEvents = {
    consume: (handle) =>
      events.consume((event, delivery) => {
        handled.push(delivery.id);
        return handle(event, delivery);
      }),
    close: () => events.close(),
  };
  const notifier = new StatusNotifier({
    events: counted,
    links,
    getBuild: (id) => store.getBuild(id),
    reporterFor: options.reporter ?? gitlabReporter,
    logUrl: (id) => `http://slipway.test/api/v1/builds/${id}/logs`,
    logger: log.logger,
  });
  await notifier.start();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await events.close();
  };
  closers.push(close);
  return { handled, close };
}

let n = 0;
async function newBuild(): Promise<Build> {
  const commit = randomBytes(20).toString("hex");
  const build = gitlabPushBuild({
    id: `b${++n}${randomBytes(3).toString("hex")}`,
    tool: TOOL,
    commit,
    source_url: `${gitlab.url}/${PROJECT_PATH}.git`,
  });
  await store.createBuild(build);
  return build;
}

const posted = (commit: string) => gitlab.postedStates(PROJECT_ID, commit);
const settled = (commit: string, state: string) => gitlab.settled(PROJECT_ID, commit, state);

describe("state events in one consumer group", () => {
  it("two API processes' notifiers post each state once and in order, and one takes over when the other stops", async () => {
    const a = await startNotifier();
    const b = await startNotifier();
    const run = async (count: number) => {
      const builds: Build[] = [];
      for (let i = 0; i < count; i++) {
        const build = await newBuild();
        builds.push(build);
        await store.updateBuild(build.id, { status: "running" });
        await store.updateBuild(build.id, { status: "failure", reason: `step ${i} failed` });
      }
      for (const build of builds) await settled(build.commit, "failed");
      return builds;
    };
    const before = await run(8);
    // Whichever one was reading stops; the other goes on from where it left off.
    const [reader, standby] = a.handled.length > 0 ? [a, b] : [b, a];
    expect(standby.handled).toEqual([]);
    await reader.close();
    const after = await run(8);
    await standby.close();

    for (const build of [...before, ...after])
      expect(posted(build.commit)).toEqual(["pending", "running", "failed"]);
    // Every event in the stream went to exactly one of the two consumers, and none is left pending.
    const ids = (await raw.xrange(STATE_EVENTS_STREAM, "-", "+")).map(([id]) => id);
    expect(ids).toHaveLength(16 * 3);
    expect(reader.handled).toEqual(ids.slice(0, 8 * 3));
    expect(standby.handled).toEqual(ids.slice(8 * 3));
    expect((await raw.xpending(STATE_EVENTS_STREAM, GROUP))[0]).toBe(0);
  }, 60_000);

  it("an event whose API process died mid-post is posted by another process, once", async () => {
    // The first process claims the step and then hangs in the post, as a process killed there would.
    const stuck: string[] = [];
    const dying = await startNotifier({
      reporter: () => ({
        report: (status) => {
          stuck.push(status.state);
          return new Promise(() => undefined);
        },
      }),
    });
    const build = await newBuild();
    await waitFor("the first process's post", () => Promise.resolve(stuck.length > 0 || undefined), 30_000);
    await dying.close();
    expect(stuck).toEqual(["pending"]);
    expect(posted(build.commit)).toEqual([]);

    // Another process takes the unacknowledged event over once it has been idle for claimIdleMs.
    const survivor = await startNotifier({ claimIdleMs: 1_000 });
    await settled(build.commit, "pending");
    await store.updateBuild(build.id, { status: "running" });
    await settled(build.commit, "running");
    await survivor.close();
    expect(posted(build.commit)).toEqual(["pending", "running"]);
    expect(log.text()).toContain("state event taken over");
  }, 60_000);
});
