import { createHmac, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import os from "node:os";
import path from "node:path";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobQueue } from "../services/adapters/queue/bullmq.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import { INITIAL_STATUS, type JobDefinition, type JobRun } from "../services/domain/jobs/job.js";
import { BuildControl } from "../services/domain/pipeline/build-control.js";
import { TriggerService } from "../services/domain/pipeline/triggers.js";
import { ToolService } from "../services/domain/tools/tool-service.js";
import { hashSecret } from "../services/platform/secrets.js";
import { apiRouter } from "../services/roles/http/api.js";
import { createApp } from "../services/roles/http/app.js";
import { loadCryptoBox } from "../services/roles/server/crypto-key.js";
import { notifyFeature } from "../services/roles/server/notify-wiring.js";
import { commandConnection, closeConnection } from "../services/adapters/redis/connection.js";
import { waitFor } from "./helpers/apps.js";
import { capturedLogger } from "./helpers/local-server.js";
import { startRedis } from "./helpers/redis.js";

/**
 * Notifications end to end on real Redis (the store's state events), a real SMTP server and a real
 * webhook receiver: what a maintainer gets in the mail and in chat, once per event, across a restart.
 */
const SECRET_VALUE = "hunter2-db-password-31337";
const TOOL_TOKEN_IN_LOG = `slp_${"x".repeat(43)}`;
const ADMIN = "sla_notify_test_admin_token";
const log = capturedLogger("debug");

interface Mail {
  to: string[];
  subject: string;
  text: string;
}
let redis: Awaited<ReturnType<typeof startRedis>>;
let home: string;
let smtp: SMTPServer;
let smtpPort = 0;
const mails: Mail[] = [];
/** While set, the SMTP server takes a message's data and never answers it (a mail server that hangs). */
let hangData = false;
let hung = 0;
let hook: Server;
let hookUrl = "";
const posts: { body: string; signature: string | undefined }[] = [];
let api: Server;
let apiUrl = "";
let store: RedisStore;
let jobs: RedisJobsStore;
let queue: JobQueue;
const redisConn = { current: undefined as ReturnType<typeof commandConnection> | undefined };
let clock = Date.parse("2026-01-01T00:00:00Z");
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  redis = await startRedis();
  home = await mkdtemp(path.join(os.tmpdir(), "slipway-notify-"));
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    closeTimeout: 500,
    onData(stream, session, callback) {
      if (hangData) {
        hung++;
        stream.resume();
        return;
      }
      simpleParser(stream)
        .then((parsed) => {
          mails.push({
            to: session.envelope.rcptTo.map((r) => r.address),
            subject: parsed.subject ?? "",
            text: parsed.text ?? "",
          });
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  smtpPort = (smtp.server.address() as { port: number }).port;

  hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      posts.push({
        body: Buffer.concat(chunks).toString("utf8"),
        signature: req.headers["x-slipway-signature"] as string | undefined,
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, "127.0.0.1", resolve));
  hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/chat`;

  store = RedisStore.create(redis.url);
  redisConn.current = commandConnection(redis.url);
  jobs = RedisJobsStore.create(redisConn.current);
  queue = JobQueue.create(redis.url, "tnotify");
  const urls = { publicUrl: "http://slipway.test", webUrl: (t: string) => `http://${t}.localhost/` };
  const tools = new ToolService(store, urls, await loadCryptoBox(home));
  await tools.create("mailtool");
  const feature = await startFeature();
  const app = createApp({
    logger: log.logger,
    rawRouters: [],
    api: apiRouter({
      store,
      tools,
      triggers: new TriggerService(store, log.logger),
      builds: new BuildControl(store, queue),
      logs: RedisBuildLogs.create(redisConn.current),
      refs: { resolve: () => Promise.resolve(undefined) },
      adminTokenHash: hashSecret(ADMIN),
      urls,
      routers: [feature.router],
    }),
  });
  api = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
}, 60_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  api?.closeAllConnections();
  await new Promise((r) => api?.close(r));
  await new Promise((r) => hook?.close(r));
  await new Promise((r) => smtp?.close(() => r(undefined)));
  await queue?.close();
  await store?.close();
  if (redisConn.current) await closeConnection(redisConn.current);
  await redis?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

/** One API process's notification feature (its own connections), as `startServer` assembles it. */
async function startFeature() {
  const conn = commandConnection(redis.url);
  const box = await loadCryptoBox(home);
  const feature = notifyFeature({
    config: {
      smtp: { url: `smtp://127.0.0.1:${smtpPort}?ignoreTLS=true`, from: "slipway@slipway.test" },
      publicUrl: "http://slipway.test",
      sourceAllowHosts: ["127.0.0.1"],
    },
    redisUrl: redis.url,
    redis: conn,
    box,
    store,
    jobs: RedisJobsStore.create(conn),
    tools: new ToolService(store, { publicUrl: "", webUrl: () => "" }, box),
    envvars: { envFor: () => Promise.resolve({ DB_PASSWORD: SECRET_VALUE, DEBUG: "1" }) },
    logger: log.logger,
    now: () => clock,
    sweepMs: 100,
    blockMs: 200,
    claimIdleMs: 3_000,
  });
  return { ...feature, conn };
}

/** Starts a notifier; the returned stop ends it as a process's shutdown would. */
async function startNotifier(): Promise<() => Promise<void>> {
  const feature = await startFeature();
  const close = await feature.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await close();
    await closeConnection(feature.conn);
  };
  stops.push(stop);
  return stop;
}

async function call(method: string, route: string, body?: unknown) {
  const res = await fetch(`${apiUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

let n = 0;
async function failedBuild(tool: string, reason: string, tail: string[]): Promise<Build> {
  const build: Build = {
    id: `b${++n}${randomBytes(3).toString("hex")}`,
    tool,
    component: "web",
    commit: randomBytes(20).toString("hex"),
    ref: "refs/heads/main",
    source_url: "http://slipway.test/git/mailtool.git",
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status: "pending",
    phase: "queued",
    created_at: new Date().toISOString(),
  };
  await store.createBuild(build);
  await store.updateBuild(build.id, { status: "running", phase: "build" });
  await store.updateBuild(build.id, { status: "failure", phase: "build", reason, log_tail: tail });
  return build;
}

async function defineJob(name: string, emails: string): Promise<void> {
  const now = new Date().toISOString();
  const def: JobDefinition = {
    tool: "mailtool",
    name,
    type: "scheduled",
    command: "./cron.sh",
    image: "registry.test/mailtool@sha256:00",
    image_name: undefined,
    release_id: "r1",
    schedule: "@hourly",
    cron: "7 * * * *",
    retry: 0,
    timeout_s: undefined,
    memory_mb: undefined,
    source: "api",
    revision: 1,
    extra: { emails },
    created_at: now,
    updated_at: now,
  };
  await jobs.putJob(def);
  await jobs.updateStatus("mailtool", name, INITIAL_STATUS);
}

/** One run of a job that writes `lines` and ends with `status`, as the runner records it. */
async function runJob(job: string, status: "failed" | "succeeded", lines: string[]): Promise<string> {
  const id = `run${++n}${randomBytes(3).toString("hex")}`;
  const run: JobRun = {
    id,
    tool: "mailtool",
    job,
    trigger: "schedule",
    attempt: 1,
    request_id: id,
    status: "running",
    exit_code: null,
    reason: null,
    image: "registry.test/mailtool@sha256:00",
    started_at: new Date().toISOString(),
    finished_at: null,
  };
  await jobs.addRun(run);
  await jobs.appendLog("mailtool", job, id, lines);
  await jobs.updateRun("mailtool", job, id, {
    status,
    exit_code: status === "failed" ? 3 : 0,
    reason: status === "failed" ? "exited with code 3" : null,
    finished_at: new Date().toISOString(),
  });
  return id;
}

const mailsAbout = (needle: string) => mails.filter((m) => m.subject.includes(needle));

describe("notifications", () => {
  it("maintainers are set through the API, with addresses checked", async () => {
    const bad = await call("POST", "/api/v1/tools/mailtool/notify/recipients", { address: "not an address" });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain("invalid email address");
    const crlf = await call("POST", "/api/v1/tools/mailtool/notify/recipients", {
      address: "a@b.org\r\nBcc: x@evil.org",
    });
    expect(crlf.status).toBe(400);
    expect(
      (await call("POST", "/api/v1/tools/mailtool/notify/recipients", { address: "Ada@Example.ORG" })).body,
    ).toMatchObject({ address: "ada@example.org", added: true });
    await call("POST", "/api/v1/tools/mailtool/notify/recipients", { address: "ops@example.org" });
    await call("POST", "/api/v1/tools/mailtool/notify/recipients", { address: "gone@example.org" });
    expect((await call("DELETE", "/api/v1/tools/mailtool/notify/recipients/gone%40example.org")).status).toBe(
      200,
    );
    expect((await call("DELETE", "/api/v1/tools/mailtool/notify/recipients/gone%40example.org")).status).toBe(
      404,
    );
    const shown = await call("GET", "/api/v1/tools/mailtool/notify");
    expect(shown.body).toEqual({
      tool: "mailtool",
      recipients: ["ada@example.org", "ops@example.org"],
      email_enabled: true,
      webhook: null,
    });
  });

  it("a failed build is mailed to the maintainers and posted, signed, to the webhook: reason and last lines, no secret", async () => {
    const set = await call("PUT", "/api/v1/tools/mailtool/notify/webhook", { url: hookUrl });
    expect(set.status).toBe(201);
    const secret = String(set.body.secret);
    expect(secret).toMatch(/^sln_/);
    // Shown once: never again.
    expect(JSON.stringify((await call("GET", "/api/v1/tools/mailtool/notify")).body)).not.toContain(secret);

    const stop = await startNotifier();
    const tail = [
      ...Array.from({ length: 40 }, (_, i) => `step ${i}`),
      `connecting with password ${SECRET_VALUE}`,
      `token ${TOOL_TOKEN_IN_LOG}`,
      "ERROR: requirements.txt names a package that does not exist",
    ];
    const build = await failedBuild("mailtool", `pip install failed (DB_PASSWORD=${SECRET_VALUE})`, tail);
    const [mail] = await waitFor(
      "the build's mail",
      () => Promise.resolve(mailsAbout(build.id).length > 0 ? mailsAbout(build.id) : undefined),
      30_000,
    );
    await waitFor("the webhook post", () => Promise.resolve(posts.length > 0 || undefined), 30_000);
    await stop();

    expect(mail!.to.sort()).toEqual(["ada@example.org", "ops@example.org"]);
    expect(mail!.subject).toBe(`[slipway] mailtool: build ${build.id} failed (build)`);
    expect(mail!.text).toContain("pip install failed");
    expect(mail!.text).toContain("ERROR: requirements.txt names a package that does not exist");
    expect(mail!.text).toContain("step 39");
    // Bounded: the first lines of the 43 are not there.
    expect(mail!.text).not.toContain("step 5\n");
    expect(mail!.text).not.toContain(SECRET_VALUE);
    expect(mail!.text).not.toContain(TOOL_TOKEN_IN_LOG);
    expect(mail!.text).toContain("[redacted]");

    const post = posts[0]!;
    expect(post.signature).toBe(`sha256=${createHmac("sha256", secret).update(post.body).digest("hex")}`);
    const body = JSON.parse(post.body) as { tool: string; kind: string; reason: string; log_tail: string[] };
    expect(body).toMatchObject({ tool: "mailtool", kind: "build_failed", build_id: build.id });
    expect(post.body).not.toContain(SECRET_VALUE);
    expect(body.log_tail.at(-1)).toBe("ERROR: requirements.txt names a package that does not exist");
    await call("DELETE", "/api/v1/tools/mailtool/notify/webhook");
  }, 60_000);

  it("a job failing repeatedly is mailed once at first, then once with the count when the hour is up", async () => {
    await defineJob("nightly", "onfailure");
    await defineJob("quiet", "none");
    const stop = await startNotifier();
    const before = mails.length;
    for (let i = 0; i < 5; i++) await runJob("nightly", "failed", [`attempt ${i}`, "Traceback: boom"]);
    // Not mailed: the job's policy says none, or only failures.
    await runJob("quiet", "failed", ["ignored"]);
    await runJob("nightly", "succeeded", ["fine"]);
    const first = await waitFor(
      "the job's first mail",
      () => Promise.resolve(mailsAbout("job nightly").length > 0 ? mailsAbout("job nightly") : undefined),
      30_000,
    );
    expect(first[0]!.subject).toBe("[slipway] mailtool: job nightly failed");
    expect(first[0]!.text).toContain("exited with code 3");
    expect(first[0]!.text).toContain("attempt 0");
    // Let the notifier see every event and a few sweeps: still the one mail within the hour.
    await waitFor(
      "the other runs counted",
      async () =>
        (await redisConn.current!.hget("slipway:notify:job:mailtool:nightly", "failed")) === "4"
          ? true
          : undefined,
      30_000,
    );
    expect(mailsAbout("job nightly")).toHaveLength(1);

    clock += 3600 * 1000;
    const batch = await waitFor(
      "the batch mail",
      () => Promise.resolve(mailsAbout("job nightly").length > 1 ? mailsAbout("job nightly") : undefined),
      30_000,
    );
    expect(batch[1]!.subject).toBe(
      "[slipway] mailtool: job nightly failed 4 times since 2026-01-01T00:00:00.000Z",
    );
    expect(batch[1]!.text).toContain("Runs: 4 failed, 0 succeeded");
    expect(batch[1]!.text).toContain("attempt 4");
    // Another hour with no failure: nothing more.
    clock += 3600 * 1000;
    await stop();
    expect(mailsAbout("job nightly")).toHaveLength(2);
    expect(mailsAbout("job quiet")).toHaveLength(0);
    expect(mails.length - before).toBe(2);
  }, 60_000);

  it("a notifier stopped mid-send and started again neither loses nor duplicates an event", async () => {
    // The mail server hangs in the middle of the first message: the process stops with it unsent.
    hangData = true;
    const first = await startNotifier();
    const stuck = await failedBuild("mailtool", "compile error", ["make: *** [all] Error 1"]);
    await waitFor("the first process's send", () => Promise.resolve(hung > 0 || undefined), 30_000);
    await first();
    hangData = false;
    expect(mailsAbout(stuck.id)).toHaveLength(0);

    // Recorded while no notifier runs.
    const meanwhile = await failedBuild("mailtool", "tests failed", ["FAILED test_app.py"]);
    const second = await startNotifier();
    await waitFor(
      "both mails",
      () =>
        Promise.resolve(
          mailsAbout(stuck.id).length > 0 && mailsAbout(meanwhile.id).length > 0 ? true : undefined,
        ),
      30_000,
    );
    await second();
    // A third start finds nothing left to tell.
    const third = await startNotifier();
    const later = await failedBuild("mailtool", "out of memory", ["Killed"]);
    await waitFor(
      "the later mail",
      () => Promise.resolve(mailsAbout(later.id).length > 0 || undefined),
      30_000,
    );
    await third();
    expect(mailsAbout(stuck.id)).toHaveLength(1);
    expect(mailsAbout(meanwhile.id)).toHaveLength(1);
    expect(mailsAbout(later.id)).toHaveLength(1);
  }, 90_000);
});
