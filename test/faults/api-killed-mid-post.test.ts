import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisStore } from "../../services/adapters/store/redis-store.js";
import { freePort } from "../../services/platform/net.js";
import type { RunningServer } from "../../services/roles/server/server.js";
import { waitFor } from "../helpers/apps.js";
import { GitlabDouble, gitlabPushBuild } from "../helpers/gitlab-double.js";
import { startLocalServer } from "../helpers/local-server.js";
import { startRedis } from "../helpers/redis.js";
import { startRegistry } from "../helpers/registry.js";

/**
 * `kill -9` of the API process while it posts a commit status: the real `slipway server --role api`
 * (dist/, `npm run build` first) runs as a child process and is killed while GitLab holds its post
 * unanswered. The API process started next posts that status (after the dead reader's lease and the
 * event's claim idle time, about 75 s), and the build's next state after it.
 */
const MAINTAINER = "glpat-maintainer-apikill-0123456789";
const PROJECT_ID = 79;
const PROJECT_PATH = "tools/api-kill";
const TOOL = "api-kill";
const repoRoot = path.resolve(import.meta.dirname, "../..");

let tmp: string;
let home: string;
let redis: Awaited<ReturnType<typeof startRedis>>;
let registry: Awaited<ReturnType<typeof startRegistry>>;
let store: RedisStore;
let gitlab: GitlabDouble;
let env: Record<string, string>;
let child: ChildProcess | undefined;
let server: RunningServer | undefined;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "slipway-api-kill-"));
  home = path.join(tmp, "slipway");
  gitlab = await GitlabDouble.start();
  gitlab.addProject({ id: PROJECT_ID, path: PROJECT_PATH, defaultBranch: "main" });
  gitlab.addToken(MAINTAINER, { role: "maintainer" });
  redis = await startRedis();
  // An outside registry: a killed server cannot stop the embedded one it would have started.
  registry = await startRegistry();
  store = RedisStore.create(redis.url);
  env = {
    SLIPWAY_HOME: home,
    REDIS_URL: redis.url,
    SLIPWAY_REGISTRY_URL: registry.url,
    SLIPWAY_REGISTRY_USERNAME: registry.username,
    SLIPWAY_REGISTRY_PASSWORD: registry.password,
    SLIPWAY_PORT: String(await freePort()),
    SLIPWAY_LOG_LEVEL: process.env.SLIPWAY_TEST_LOG_LEVEL ?? "warn",
    // The GitLab double is on loopback, which only an operator's allow-list lets Slipway call.
    SLIPWAY_SOURCE_ALLOW_HOSTS: new URL(gitlab.url).host,
  };
});

afterAll(async () => {
  child?.kill("SIGKILL");
  await server?.close();
  await store?.close();
  await registry?.stop();
  await redis?.stop();
  await gitlab?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("the API process killed while it posts a commit status", () => {
  it("the next API process posts that status, then the build's next one, each once", async () => {
    child = spawn(
      process.execPath,
      [path.join(repoRoot, "dist/services/main.js"), "server", "--role", "api"],
      {
        env: { ...process.env, ...env },
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    const url = `http://127.0.0.1:${env.SLIPWAY_PORT}`;
    const admin = await waitFor(
      "the API process",
      async () => {
        const token = (await readFile(path.join(home, "admin-token"), "utf8")).trim();
        const res = await fetch(`${url}/api/v1/tools`, { headers: { authorization: `Bearer ${token}` } });
        return res.ok ? token : undefined;
      },
      60_000,
    );
    const post = async (route: string, body: unknown, token: string) => {
      const res = await fetch(`${url}${route}`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.ok, `${route}: ${res.status} ${await res.clone().text()}`).toBe(true);
      return (await res.json()) as { token: string };
    };
    const tool = await post("/api/v1/tools", { name: TOOL }, admin);
    await post(
      `/api/v1/tools/${TOOL}/gitlab`,
      { url: gitlab.url, project: PROJECT_PATH, token: MAINTAINER },
      tool.token,
    );

    // GitLab holds the next posts unanswered; the build's first state reaches the API process's post.
    gitlab.failNext(100, { kind: "hang" });
    const commit = "ab".repeat(20);
    const build = gitlabPushBuild({
      id: "bkilledmidpost",
      tool: TOOL,
      commit,
      source_url: `${gitlab.url}/${PROJECT_PATH}.git`,
    });
    await store.createBuild(build);
    await waitFor("the post to GitLab", () => Promise.resolve(gitlab.faulted > 0 || undefined), 30_000, 50);
    child.kill("SIGKILL");
    await new Promise((resolve) => child!.once("exit", resolve));
    child = undefined;
    gitlab.failNext(0);
    expect(gitlab.postedStates(PROJECT_ID, commit)).toEqual([]);

    server = (await startLocalServer({ home, env, role: "api", ready: false })).server;
    await gitlab.settled(PROJECT_ID, commit, "pending", 180_000);
    await store.updateBuild(build.id, { status: "running" });
    await gitlab.settled(PROJECT_ID, commit, "running", 30_000);
    expect(gitlab.postedStates(PROJECT_ID, commit)).toEqual(["pending", "running"]);
    expect(gitlab.statuses(PROJECT_ID, commit).map((s) => s.status)).toEqual(["running"]);
  }, 300_000);
});
