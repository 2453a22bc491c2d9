import { mkdtemp, readdir, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import express from "express";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessFetcher } from "../services/adapters/git/fetch-process.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import { BuildPipeline } from "../services/domain/pipeline/build-pipeline.js";
import { PipelineError, SlipwayError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import type { SourceFetcher } from "../services/ports/source.js";
import { loadCryptoBox } from "../services/roles/server/crypto-key.js";
import { gitlabFeature } from "../services/roles/server/gitlab-wiring.js";
import { git, gitRepo } from "./helpers/apps.js";
import { gitHttpBackend } from "./helpers/git-http.js";
import { startRedis } from "./helpers/redis.js";

/**
 * A private GitLab repository stand-in: a real repository served by git's smart-HTTP `http-backend`
 * behind HTTP basic auth that accepts only the deploy token, as GitLab does for `read_repository` deploy
 * tokens (username + token as basic credentials).
 */
const DEPLOY_USER = "gitlab+deploy-token-7";
const DEPLOY_TOKEN = "gldt-private-fetch-s3cr3t-0123456789";
const ACCESS_TOKEN = "glpat-private-fetch-access-0123456789";
const PROJECT_PATH = "group/private-app";

let root: string;
let gitServer: Server;
let elsewhereServer: Server;
const elsewhereAuth: (string | undefined)[] = [];
let base: string;
let repoUrl: string;
let commit: string;
let redis: Awaited<ReturnType<typeof startRedis>>;
let raw: Redis;
let store: RedisStore;
let feature: ReturnType<typeof gitlabFeature>;
const logger = memoryLogger();

/** The builder's fetcher: the credentials travel to a child process over IPC, never on its command line. */
const fetcher = ProcessFetcher.create({
  entry: path.resolve(import.meta.dirname, "../dist/services/adapters/git/fetch-child.js"),
  maxTotalBytes: 10 * 1024 * 1024,
  maxFileBytes: 1024 * 1024,
  // The GitLab stand-in and "elsewhere" listen on loopback ports chosen later: allow the loopback host.
  allowHosts: ["127.0.0.1"],
  logger,
});

/** What server.ts gives the builder: the request's own credentials, else the tool's deploy token. */
const builderFetcher: SourceFetcher = {
  fetch: async (request, dest, signal) =>
    fetcher.fetch(
      { ...request, auth: request.auth ?? (await feature.fetchAuth(request.tool, request.url)) },
      dest,
      signal,
    ),
};

async function freshDest(name: string): Promise<string> {
  return mkdtemp(path.join(root, `${name}-`));
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "slipway-private-fetch-"));
  const reposDir = path.join(root, "repos");
  const work = await gitRepo({ Procfile: "web: node server.js\n", "server.js": "// private\n" });
  commit = (await git(work.dir, ["rev-parse", "HEAD"])).trim();
  await git(root, ["clone", "-q", "--bare", work.dir, path.join(reposDir, `${PROJECT_PATH}.git`)]);

  // Elsewhere: another origin, which records what credentials reach it.
  const elsewhere = express();
  elsewhere.use((req, res) => {
    elsewhereAuth.push(req.headers.authorization);
    res.status(401).set("WWW-Authenticate", 'Basic realm="elsewhere"').send("no\n");
  });
  elsewhereServer = await new Promise((resolve) => {
    const s = elsewhere.listen(0, "127.0.0.1", () => resolve(s));
  });
  const app = express();
  // GitLab answers a renamed project's old path with a redirect to the new one.
  app.use("/group/renamed-app.git", (req, res) => res.redirect(301, `/${PROJECT_PATH}.git${req.url}`));
  app.use("/group/moved-away.git", (req, res) =>
    res.redirect(302, `http://127.0.0.1:${(elsewhereServer.address() as AddressInfo).port}${req.url}`),
  );
  app.use(
    gitHttpBackend(
      reposDir,
      (user, password, repository) =>
        repository === PROJECT_PATH && user === DEPLOY_USER && password === DEPLOY_TOKEN,
    ),
  );
  gitServer = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  base = `http://127.0.0.1:${(gitServer.address() as AddressInfo).port}`;
  repoUrl = `${base}/${PROJECT_PATH}.git`;

  redis = await startRedis();
  raw = new Redis(redis.url);
  store = RedisStore.create(redis.url);
  feature = gitlabFeature({
    box: await loadCryptoBox(root),
    publicUrl: "http://127.0.0.1:1",
    redisUrl: redis.url,
    redis: raw,
    store,
    allowHosts: [new URL(base).host],
    logger,
  });
  await feature.links.put({
    tool: "private-app",
    gitlab_url: base,
    project_id: 7,
    project_path: PROJECT_PATH,
    http_url: repoUrl,
    web_url: `${base}/${PROJECT_PATH}`,
    default_branch: "main",
    hook_id: 1,
    deploy_token_id: 7,
    deploy_token_username: DEPLOY_USER,
    deploy_token: DEPLOY_TOKEN,
    access_token: ACCESS_TOKEN,
    linked_at: new Date().toISOString(),
  });
});

afterAll(async () => {
  elsewhereServer?.closeAllConnections();
  elsewhereServer?.close();
  gitServer?.closeAllConnections();
  await new Promise<void>((r) => (gitServer ? gitServer.close(() => r()) : r()));
  await store?.close();
  await raw?.quit();
  await redis?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe("fetching a private GitLab repository", () => {
  it("fails without credentials with a clear message naming the URL, not a stack trace", async () => {
    const dest = await freshDest("anon");
    const err = await fetcher
      .fetch({ url: repoUrl, ref: "refs/heads/main", commit }, dest)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlipwayError);
    expect(err).toMatchObject({ code: "source_fetch_failed" });
    expect((err as Error).message).toBe(
      `authentication failed for ${repoUrl}: the repository needs credentials and none were given`,
    );
    expect((err as Error).message).not.toMatch(/\n\s+at /);
    expect(await readdir(dest)).toEqual([]);
  });

  it("says the credentials were refused when they are wrong, without echoing them", async () => {
    const dest = await freshDest("wrong");
    const err = await fetcher
      .fetch(
        {
          url: repoUrl,
          ref: "refs/heads/main",
          commit,
          auth: { username: DEPLOY_USER, password: "gldt-wrong-s3cr3t" },
        },
        dest,
      )
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `authentication failed for ${repoUrl}: the repository needs credentials and the credentials given were refused`,
    );
    expect(JSON.stringify({ m: (err as Error).message, d: (err as SlipwayError).details })).not.toContain(
      "s3cr3t",
    );
  });

  it("fetches with the linked tool's deploy token", async () => {
    const dest = await freshDest("linked");
    const fetched = await builderFetcher.fetch(
      { url: repoUrl, ref: "refs/heads/main", commit, tool: "private-app" },
      dest,
    );
    expect(fetched.commit).toBe(commit);
    expect((await readdir(dest)).sort()).toEqual(["Procfile", "server.js"]);
  });

  it("follows the redirect of a renamed project, credentials included", async () => {
    const dest = await freshDest("renamed");
    const auth = { username: DEPLOY_USER, password: DEPLOY_TOKEN };
    await fetcher.fetch({ url: `${base}/group/renamed-app.git`, ref: "main", commit, auth }, dest);
    expect((await readdir(dest)).sort()).toEqual(["Procfile", "server.js"]);
  });

  it("never sends the credentials on to another origin it is redirected to", async () => {
    const dest = await freshDest("moved-away");
    const auth = { username: DEPLOY_USER, password: DEPLOY_TOKEN };
    const err = await fetcher
      .fetch({ url: `${base}/group/moved-away.git`, ref: "main", commit, auth }, dest)
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "source_fetch_failed" });
    expect(elsewhereAuth.length).toBeGreaterThan(1);
    expect(elsewhereAuth.filter((a) => a !== undefined)).toEqual([]);
  });

  it("gives the deploy token only to its own tool, and only for the linked project", async () => {
    expect(await feature.fetchAuth("private-app", `${base}/group/Private-App`)).toEqual({
      username: DEPLOY_USER,
      password: DEPLOY_TOKEN,
    });
    // Another tool pointing its source at this project gets nothing.
    expect(await feature.fetchAuth("someone-else", repoUrl)).toBeUndefined();
    // The linked tool building from another project on the same host gets nothing either.
    expect(await feature.fetchAuth("private-app", `${base}/group/other.git`)).toBeUndefined();
    expect(await feature.fetchAuth(undefined, repoUrl)).toBeUndefined();
    const err = await builderFetcher
      .fetch({ url: repoUrl, ref: "refs/heads/main", commit, tool: "someone-else" }, await freshDest("x"))
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/^authentication failed for /);
  });
});

describe("a build of a linked tool from its private project", () => {
  const logs = () => RedisBuildLogs.create(raw);

  async function runBuild(tool: string): Promise<{ build: Build; log: string[]; seen: string[] }> {
    const id = `b${Math.random().toString(36).slice(2, 10)}`;
    await store.createBuild({
      id,
      tool,
      component: "web",
      commit,
      ref: "refs/heads/main",
      source_url: repoUrl,
      trigger: { kind: "gitlab_push", ref: "refs/heads/main" },
      status: "pending",
      phase: "queued",
      created_at: new Date().toISOString(),
    });
    let seen: string[] = [];
    const pipeline = new BuildPipeline({
      store,
      logs: logs(),
      queue: { enqueue: () => Promise.resolve(), removeWaiting: () => Promise.resolve(false) },
      fetcher: builderFetcher,
      backend: {
        // Stands in for the buildpacks: records what was checked out, then stops the build.
        build: async ({ appDir }) => {
          seen = (await readdir(appDir)).sort();
          throw new PipelineError("build_failed", "stub lifecycle: stops after the fetch");
        },
      },
      workRoot: path.join(root, "work"),
      logger,
      timeoutS: 120,
    });
    await pipeline.run(id, { signal: new AbortController().signal, finalAttempt: true });
    const build = (await store.getBuild(id))!;
    const log = (await logs().read(id)).map((l) => l.line);
    return { build, log, seen };
  }

  it("checks out the private source with the deploy token", async () => {
    const { build, log, seen } = await runBuild("private-app");
    expect(seen).toEqual(["Procfile", "server.js"]);
    expect(build.reason).toContain("stub lifecycle");
    expect(log.join("\n")).toContain(`===> FETCHING ${repoUrl}`);
  });

  it("fails a build of another tool from that project with the authentication error as its reason", async () => {
    const { build, seen } = await runBuild("someone-else");
    expect(seen).toEqual([]);
    expect(build.status).toBe("failure");
    expect(build.reason).toContain(`authentication failed for ${repoUrl}`);
  });

  it("never puts a credential in a build log, a build record or the server log", async () => {
    const everything = JSON.stringify({
      builds: await store.listBuilds("private-app", 10),
      others: await store.listBuilds("someone-else", 10),
      logs: await Promise.all(
        [...(await store.listBuilds("private-app", 10)), ...(await store.listBuilds("someone-else", 10))].map(
          async (b) => logs().read(b.id),
        ),
      ),
      server: logger.entries,
    });
    expect(everything).toContain("authentication failed");
    for (const secret of [DEPLOY_TOKEN, ACCESS_TOKEN, "s3cr3t"]) expect(everything).not.toContain(secret);
  });
});
