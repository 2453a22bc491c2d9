import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GitlabForgeLink } from "../services/adapters/gitlab/forge-link.js";
import { GitlabStatusReporter } from "../services/adapters/gitlab/status-reporter.js";
import { linkGitlab, linkSummary, unlinkGitlab } from "../services/domain/gitlab/linking.js";
import { InputError, SlipwayError, TransientError } from "../services/platform/errors.js";
import { createLogger, type Logger } from "../services/platform/logger.js";
import { commitStatusName, type CommitStatus } from "../services/ports/forge.js";
import { GitlabDouble } from "./helpers/gitlab-double.js";

const MAINTAINER = "glpat-maintainer-0123456789abcdef";
const DEVELOPER = "glpat-developer-0123456789abcdef";
const GUEST = "glpat-guest-0123456789abcdef";
const READ_API = "glpat-readapi-0123456789abcdef";
const WRONG = "glpat-wrong-0123456789abcdef";
const SECRET = "slw_webhook_secret_abcdefghijklmnopqrstuvwxyz012345";
const PROJECT_ID = 42;
const PROJECT_PATH = "tools/web-app";
const SHA = "a".repeat(40);
const WEBHOOK_URL = "https://slipway.example.org/hooks/gitlab/web-app";

/** Everything every logger in this file wrote, through the real pino logger with its redaction. */
let logText = "";
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    logText += chunk.toString("utf8");
    done();
  },
});
const logger: Logger = createLogger({ level: "debug", destination: sink });

let gitlab: GitlabDouble;
let delays: number[];
const retry = () => ({
  sleep: (ms: number) => {
    delays.push(ms);
    return Promise.resolve();
  },
  random: () => 0.5,
});

const link = (token = MAINTAINER) =>
  GitlabForgeLink.create({
    host: gitlab.url,
    token,
    allowHosts: [new URL(gitlab.url).host],
    logger,
    retry: retry(),
  });
const reporter = (token = DEVELOPER) =>
  GitlabStatusReporter.create({
    host: gitlab.url,
    token,
    allowHosts: [new URL(gitlab.url).host],
    logger,
    retry: retry(),
  });
const status = (over: Partial<CommitStatus> = {}): CommitStatus => ({
  projectId: PROJECT_ID,
  sha: SHA,
  ref: "main",
  name: commitStatusName("web"),
  state: "pending",
  targetUrl: "https://slipway.example.org/builds/b-1/logs",
  description: "Build queued",
  ...over,
});

beforeAll(() => {
  logText = "";
});

beforeEach(async () => {
  delays = [];
  gitlab = await GitlabDouble.start();
  gitlab.addProject({ id: PROJECT_ID, path: PROJECT_PATH });
  gitlab.addToken(MAINTAINER, { role: "maintainer" });
  gitlab.addToken(DEVELOPER, { role: "developer" });
  gitlab.addToken(GUEST, { role: "guest" });
  gitlab.addToken(READ_API, { role: "maintainer", scopes: ["read_api"] });
});

afterEach(async () => {
  await gitlab.close();
});

describe("linking a GitLab project", () => {
  it("registers a hook with exactly push and tag push events and the secret, and a read_repository deploy token", async () => {
    const result = await linkGitlab(link(), {
      tool: "web-app",
      project: PROJECT_PATH,
      webhookUrl: WEBHOOK_URL,
      webhookSecret: SECRET,
    });

    expect(result).toMatchObject({
      project_id: PROJECT_ID,
      project_path: PROJECT_PATH,
      http_url: `${gitlab.url}/${PROJECT_PATH}.git`,
      default_branch: "main",
    });
    // What Slipway sent: the secret as the hook's token, TLS verification on, nothing but pushes.
    const [sent] = gitlab.requestsTo("POST", /\/projects\/tools\/web-app\/hooks$|\/projects\/42\/hooks$/);
    expect(sent?.body).toMatchObject({
      url: WEBHOOK_URL,
      token: SECRET,
      enable_ssl_verification: true,
      push_events: true,
      tag_push_events: true,
    });
    const hooks = gitlab.hooks(PROJECT_ID);
    expect(hooks).toHaveLength(1);
    const hook = hooks[0]!;
    expect(hook.id).toBe(result.hook_id);
    expect(hook.token).toBe(SECRET);
    expect(hook.enable_ssl_verification).toBe(true);
    const enabled = Object.entries(hook)
      .filter(([k, v]) => k.endsWith("_events") && v === true)
      .map(([k]) => k);
    expect(enabled.sort()).toEqual(["push_events", "tag_push_events"]);

    const tokens = gitlab.deployTokens(PROJECT_ID);
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toMatchObject({ name: "slipway-web-app", scopes: ["read_repository"], revoked: false });
    expect(result.deploy_token).toEqual({
      id: tokens[0]!.id,
      username: tokens[0]!.username,
      token: tokens[0]!.token,
    });

    const printed = JSON.stringify(linkSummary("web-app", result));
    expect(printed).not.toContain(tokens[0]!.token);
    expect(printed).not.toContain(SECRET);
  });

  it("linking again updates the same hook instead of adding a second", async () => {
    const forge = link();
    const input = { tool: "web-app", project: PROJECT_ID, webhookUrl: WEBHOOK_URL, webhookSecret: SECRET };
    const first = await linkGitlab(forge, input);
    const second = await linkGitlab(forge, { ...input, webhookSecret: `${SECRET}-rotated` });
    expect(second.hook_id).toBe(first.hook_id);
    expect(gitlab.hooks(PROJECT_ID)).toHaveLength(1);
    expect(gitlab.hooks(PROJECT_ID)[0]!.token).toBe(`${SECRET}-rotated`);
  });

  it("unlink removes the hook and revokes the deploy token, and is idempotent", async () => {
    const forge = link();
    const result = await linkGitlab(forge, {
      tool: "web-app",
      project: PROJECT_ID,
      webhookUrl: WEBHOOK_URL,
      webhookSecret: SECRET,
    });
    const ids = {
      project_id: result.project_id,
      hook_id: result.hook_id,
      deploy_token_id: result.deploy_token.id,
    };
    await unlinkGitlab(forge, ids);
    expect(gitlab.hooks(PROJECT_ID)).toHaveLength(0);
    expect(gitlab.deployTokens(PROJECT_ID).every((t) => t.revoked)).toBe(true);
    await expect(unlinkGitlab(forge, ids)).resolves.toBeUndefined();
    expect(gitlab.requestsTo("DELETE", /hooks\/\d+$/)).toHaveLength(2);
  });

  it("removes the hook again when the deploy token cannot be created", async () => {
    const forge = link();
    const realCreate = forge.createDeployToken.bind(forge);
    forge.createDeployToken = async (project, name) => {
      gitlab.failNext(1, { kind: "status", status: 422 });
      return realCreate(project, name);
    };
    await expect(
      linkGitlab(forge, {
        tool: "web-app",
        project: PROJECT_ID,
        webhookUrl: WEBHOOK_URL,
        webhookSecret: SECRET,
      }),
    ).rejects.toThrow(/refused to create a deploy token.*422/);
    expect(gitlab.hooks(PROJECT_ID)).toHaveLength(0);
  });

  it("a wrong token is a 401 with a message saying which token to create", async () => {
    const error = await link(WRONG)
      .describeProject(PROJECT_ID)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as SlipwayError).message).toMatch(/rejected the access token \(401\).*"api" scope/);
    expect((error as SlipwayError).details).toMatchObject({ field: "token", gitlab_status: 401 });
  });

  it("a Developer cannot link: 403 says the Maintainer role is needed", async () => {
    await expect(link(DEVELOPER).registerHook(PROJECT_ID, WEBHOOK_URL, SECRET)).rejects.toThrow(
      /403.*"api" scope and at least the Maintainer role/,
    );
    await expect(link(READ_API).createDeployToken(PROJECT_ID, "x")).rejects.toThrow(
      /insufficient_scope.*"api" scope/,
    );
  });

  it("an unknown project is a 404 that names the project", async () => {
    await expect(link().describeProject("tools/nope")).rejects.toThrow(
      /nothing at project tools\/nope.*404.*check the project id or path/,
    );
  });

  it("retries a flaky GitLab and gives up with a TransientError", async () => {
    gitlab.failNext(2, { kind: "status", status: 503 });
    await expect(link().describeProject(PROJECT_ID)).resolves.toMatchObject({ id: PROJECT_ID });
    expect(delays).toHaveLength(2);

    gitlab.failNext(100, { kind: "drop" });
    const error = await link()
      .describeProject(PROJECT_ID)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toMatch(/could not be reached to read the project after 5 tries/);
  });
});

describe("commit statuses", () => {
  it("posts pending, running and success as slipway/web with target_url and description", async () => {
    const r = reporter();
    expect(await r.report(status({ state: "pending", description: "Build queued" }))).toEqual({
      ok: true,
      outcome: "posted",
      attempts: 1,
    });
    expect(await r.report(status({ state: "running", description: "Building" }))).toMatchObject({ ok: true });
    expect(await r.report(status({ state: "success", description: "Deployed" }))).toMatchObject({ ok: true });

    const posted = gitlab.requestsTo("POST", /\/statuses\//);
    expect(posted.map((p) => p.body)).toEqual([
      {
        state: "pending",
        ref: "main",
        name: "slipway/web",
        target_url: "https://slipway.example.org/builds/b-1/logs",
        description: "Build queued",
      },
      expect.objectContaining({ state: "running", description: "Building" }),
      expect.objectContaining({ state: "success", description: "Deployed" }),
    ]);
    const statuses = gitlab.statuses(PROJECT_ID, SHA);
    expect(statuses).toHaveLength(1);
    expect(statuses[0]).toMatchObject({
      name: "slipway/web",
      ref: "main",
      status: "success",
      target_url: "https://slipway.example.org/builds/b-1/logs",
      description: "Deployed",
    });
  });

  it("works with a URL-encoded project path too", async () => {
    expect(await reporter().report(status({ projectId: PROJECT_PATH }))).toMatchObject({ ok: true });
    expect(gitlab.statuses(PROJECT_ID, SHA)[0]?.status).toBe("pending");
  });

  it("repeating a state GitLab already has is a no-op, not an error", async () => {
    const r = reporter();
    await r.report(status({ state: "pending" }));
    expect(await r.report(status({ state: "pending" }))).toEqual({
      ok: true,
      outcome: "unchanged",
      attempts: 1,
    });
    await r.report(status({ state: "running" }));
    expect(await r.report(status({ state: "running" }))).toEqual({
      ok: true,
      outcome: "unchanged",
      attempts: 1,
    });
    // GitLab really did answer 400 both times; no retry was made.
    expect(gitlab.requestsTo("POST", /\/statuses\//)).toHaveLength(4);
    expect(delays).toHaveLength(0);
    expect(gitlab.statuses(PROJECT_ID, SHA)[0]?.status).toBe("running");
  });

  it("a state change GitLab refuses (running back to pending) is reported, not retried", async () => {
    const r = reporter();
    await r.report(status({ state: "running" }));
    const result = await r.report(status({ state: "pending" }));
    expect(result).toMatchObject({ ok: false, code: "rejected", attempts: 1 });
    expect(result.ok === false && result.message).toMatch(/kept the commit status at "running"/);
  });

  it("shortens descriptions to 255 characters and leaves out an over-long target_url", async () => {
    const result = await reporter().report(
      status({ description: "x".repeat(300), targetUrl: `https://slipway.example.org/${"y".repeat(300)}` }),
    );
    expect(result.ok).toBe(true);
    const [sent] = gitlab.requestsTo("POST", /\/statuses\//);
    expect(sent?.body.description).toHaveLength(255);
    expect(sent?.body.description).toMatch(/…$/);
    expect(sent?.body).not.toHaveProperty("target_url");
  });

  it("retries a 500 twice and then succeeds", async () => {
    gitlab.failNext(2, { kind: "status", status: 500 });
    const result = await reporter().report(status());
    expect(result).toEqual({ ok: true, outcome: "posted", attempts: 3 });
    expect(delays).toEqual([2_000, 4_000].map((d) => d * 0.75));
    expect(gitlab.statuses(PROJECT_ID, SHA)).toHaveLength(1);
  });

  it("retries dropped connections", async () => {
    gitlab.failNext(2, { kind: "drop" });
    expect(await reporter().report(status())).toEqual({ ok: true, outcome: "posted", attempts: 3 });
  });

  it("401, 403 and 404 come back as results that say what to fix, without retrying", async () => {
    const wrong = await reporter(WRONG).report(status());
    expect(wrong).toMatchObject({ ok: false, code: "unauthorized", attempts: 1 });
    expect(!wrong.ok && wrong.message).toMatch(/wrong, expired or revoked.*"api" scope/);

    const guest = await reporter(GUEST).report(status());
    expect(guest).toMatchObject({ ok: false, code: "forbidden", attempts: 1 });
    expect(!guest.ok && guest.message).toMatch(/"api" scope and at least the Developer role/);

    const readOnly = await reporter(READ_API).report(status());
    expect(readOnly).toMatchObject({ ok: false, code: "forbidden" });
    expect(!readOnly.ok && readOnly.message).toMatch(/insufficient_scope/);

    const missing = await reporter().report(status({ projectId: 999 }));
    expect(missing).toMatchObject({ ok: false, code: "not_found", attempts: 1 });
    expect(!missing.ok && missing.message).toMatch(/project 999.*check the project id or path/);
    expect(delays).toHaveLength(0);
  });

  it("GitLab down entirely: bounded retries, then a failure result; never throws", async () => {
    gitlab.failNext(1_000, { kind: "status", status: 502 });
    const result = await reporter().report(status());
    expect(result).toMatchObject({ ok: false, code: "unavailable", attempts: 5 });
    expect(!result.ok && result.message).toMatch(/could not be reached to set a commit status after 5 tries/);
    expect(delays).toHaveLength(4);
    // The default policy at its worst (random → 1) waits 2 + 4 + 8 + 16 s.
    expect(delays.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(30_000);

    const closedUrl = gitlab.url;
    await gitlab.close();
    const unreachable = GitlabStatusReporter.create({
      host: closedUrl,
      token: DEVELOPER,
      allowHosts: [new URL(closedUrl).host],
      logger,
      retry: retry(),
    });
    const down = await unreachable.report(status());
    expect(down).toMatchObject({ ok: false, code: "unavailable", attempts: 5 });
    // afterEach closes again; a fresh double keeps that harmless.
    gitlab = await GitlabDouble.start();
  });

  it("refuses plain http to a non-loopback host, which would send the token in clear", () => {
    expect(() =>
      GitlabStatusReporter.create({
        host: "http://gitlab.example.org",
        token: DEVELOPER,
        allowHosts: [],
        logger,
      }),
    ).toThrow(/must use https/);
  });
});

describe("a GitLab URL from a tool owner", () => {
  it("on a loopback address is refused before any request, unless the operator allows the host", async () => {
    const notAllowed = GitlabForgeLink.create({
      host: gitlab.url,
      token: MAINTAINER,
      allowHosts: [],
      logger,
    });
    const error = await notAllowed.describeProject(PROJECT_PATH).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toBe(
      `GitLab at ${new URL(gitlab.url).host} is a loopback address: Slipway calls GitLab only on public addresses. Use the instance's public URL, or ask the operator to add ${new URL(gitlab.url).host} to SLIPWAY_SOURCE_ALLOW_HOSTS`,
    );
    // A name is judged by what it resolves to.
    const byName = GitlabStatusReporter.create({
      host: gitlab.url.replace("127.0.0.1", "localhost"),
      token: DEVELOPER,
      allowHosts: [],
      logger,
    });
    expect(await byName.report(status())).toMatchObject({ ok: false, code: "rejected", attempts: 1 });
    expect(gitlab.requests).toHaveLength(0);
  });

  it("cannot redirect Slipway to a loopback service", async () => {
    // An allowed host stands in for a public GitLab that answers with a redirect to a local port.
    const target = http.createServer((_req, res) => res.end("{}"));
    const bouncer = http.createServer((req, res) => {
      res.writeHead(302, {
        location: `http://localhost:${(target.address() as AddressInfo).port}${req.url}`,
      });
      res.end();
    });
    const hits: string[] = [];
    target.on("request", (req: http.IncomingMessage) => hits.push(req.url ?? ""));
    await Promise.all([listen(target), listen(bouncer)]);
    try {
      const bounced = `http://127.0.0.1:${(bouncer.address() as AddressInfo).port}`;
      const forge = GitlabForgeLink.create({
        host: bounced,
        token: MAINTAINER,
        allowHosts: [new URL(bounced).host],
        logger,
      });
      const error = await forge.describeProject(PROJECT_PATH).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(/^GitLab at localhost:\d+ is a loopback address/);
      expect(hits).toEqual([]);
    } finally {
      target.close();
      bouncer.close();
    }
  });
});

function listen(server: http.Server): Promise<void> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
}

describe("logs", () => {
  // Runs last (vitest runs a file's tests in order): every test above logged through the real logger at
  // debug level, retries and failures included; no credential may appear in what it wrote.
  it("never contain a GitLab token, webhook secret or deploy token", () => {
    expect(logText).toContain("gitlab commit status failed, retrying");
    expect(logText).toContain("gitlab deploy token created");
    for (const secret of [MAINTAINER, DEVELOPER, GUEST, READ_API, WRONG, SECRET, "gldt-double"]) {
      expect(logText).not.toContain(secret);
    }
  });
});
