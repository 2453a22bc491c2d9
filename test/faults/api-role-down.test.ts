import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisStore } from "../../services/adapters/store/redis-store.js";
import { freePort } from "../../services/platform/net.js";
import type { RunningServer } from "../../services/roles/server/server.js";
import { git, gitRepo, viaProxy, waitFor } from "../helpers/apps.js";
import { GitlabDouble, pushEvent } from "../helpers/gitlab-double.js";
import {
  clientOf,
  removeToolContainers,
  startLocalServer,
  type LocalServerOptions,
} from "../helpers/local-server.js";
import { startRedis } from "../helpers/redis.js";
import { startRegistry } from "../helpers/registry.js";

/**
 * A real build of a GitLab-linked tool while no API process runs: the roles run as separate servers on
 * one Redis, one registry and one home. The push is accepted by the API role, which is then stopped; the
 * builder and deployer roles take the build live; the API role starts again and posts the commit
 * statuses it missed, in order and once each.
 */
const MAINTAINER = "glpat-maintainer-apidown-0123456789";
const PROJECT_ID = 78;
const PROJECT_PATH = "tools/api-down";
const TOOL = "api-down";

let tmp: string;
let redis: Awaited<ReturnType<typeof startRedis>>;
let registry: Awaited<ReturnType<typeof startRegistry>>;
let store: RedisStore;
let gitlab: GitlabDouble;
let commit: string;
let api: RunningServer | undefined;
const others: RunningServer[] = [];
let roleOptions: (role: "api" | "builder" | "deployer") => LocalServerOptions;

const client = clientOf(() => api!);

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "slipway-api-down-"));
  const work = await gitRepo({ "index.html": "<h1>built while the API was down</h1>\n" });
  commit = (await git(work.dir, ["rev-parse", "HEAD"])).trim();
  const reposDir = path.join(tmp, "gitlab-repos");
  await git(tmp, ["clone", "-q", "--bare", work.dir, path.join(reposDir, `${PROJECT_PATH}.git`)]);
  gitlab = await GitlabDouble.start();
  gitlab.addProject({ id: PROJECT_ID, path: PROJECT_PATH, defaultBranch: "main" });
  gitlab.addToken(MAINTAINER, { role: "maintainer" });
  gitlab.serveRepositories(reposDir);

  redis = await startRedis();
  registry = await startRegistry();
  store = RedisStore.create(redis.url);
  // Every role shares the home (encryption key, builder secret), Redis, registry and public URL.
  const env = {
    REDIS_URL: redis.url,
    SLIPWAY_REGISTRY_URL: registry.url,
    SLIPWAY_REGISTRY_USERNAME: registry.username,
    SLIPWAY_REGISTRY_PASSWORD: registry.password,
    SLIPWAY_PORT: String(await freePort()),
    SLIPWAY_HEALTH_TIMEOUT_S: "30",
    // The GitLab double serves the repository on loopback, which source fetches refuse unless allowed.
    SLIPWAY_SOURCE_ALLOW_HOSTS: new URL(gitlab.url).host,
  };
  const home = path.join(tmp, "slipway");
  roleOptions = (role) => ({ home, env, role, ready: role === "builder" });
}, 1_200_000);

afterAll(async () => {
  await api?.close();
  for (const s of others) await s.close();
  await removeToolContainers(TOOL);
  await store?.close();
  await registry?.stop();
  await redis?.stop();
  await gitlab?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("commit statuses of a build that ran while the API role was stopped", () => {
  it("are posted when the API role starts again: pending, running, success, each once", async () => {
    api = (await startLocalServer(roleOptions("api"))).server;
    const tool = await client.api<{ name: string; token: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: TOOL }),
    });
    await client.api(
      `/api/v1/tools/${TOOL}/gitlab`,
      {
        method: "POST",
        body: JSON.stringify({ url: gitlab.url, project: PROJECT_PATH, token: MAINTAINER }),
      },
      tool.token,
    );
    const res = await fetch(`${api.url}/hooks/gitlab/${TOOL}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": "Push Hook",
        "x-gitlab-token": gitlab.hooks(PROJECT_ID)[0]!.token!,
      },
      body: pushEvent(
        { id: PROJECT_ID, path: PROJECT_PATH, gitUrl: `${gitlab.url}/${PROJECT_PATH}.git` },
        commit,
      ),
    });
    expect(res.status).toBe(202);
    const { build_id: buildId } = (await res.json()) as { build_id: string };

    // The API role stops right after accepting the push; builder and deployer carry on without it.
    await api.close();
    api = undefined;
    const atStop = gitlab.postedStates(PROJECT_ID, commit);
    expect(["pending"]).toEqual(expect.arrayContaining(atStop));
    others.push((await startLocalServer(roleOptions("deployer"))).server);
    others.push((await startLocalServer(roleOptions("builder"))).server);
    const built = await waitFor(
      `build ${buildId}`,
      async () => {
        const b = await store.getBuild(buildId);
        return b && ["success", "failure", "cancelled", "superseded"].includes(b.status) ? b : undefined;
      },
      600_000,
      500,
    );
    expect(built.status, JSON.stringify(built)).toBe("success");
    const live = await waitFor(
      "the release",
      async () => {
        const r = built.release_id ? await store.getRelease(built.release_id) : undefined;
        return r && r.status !== "deploying" ? r : undefined;
      },
      180_000,
      500,
    );
    expect(live.status, JSON.stringify(live)).toBe("live");
    // Nothing reached GitLab while no API process ran.
    expect(gitlab.postedStates(PROJECT_ID, commit)).toEqual(atStop);

    const restarted = await startLocalServer(roleOptions("api"));
    api = restarted.server;
    const success = await gitlab.settled(PROJECT_ID, commit, "success", 60_000);
    expect(success).toMatchObject({
      name: "slipway/web",
      ref: "main",
      target_url: `${api.url}/api/v1/builds/${buildId}/logs`,
    });
    expect(gitlab.postedStates(PROJECT_ID, commit)).toEqual(["pending", "running", "success"]);
    expect(gitlab.statuses(PROJECT_ID, commit).map((s) => s.status)).toEqual(["success"]);
    // `build list` tells the same story, and the tool serves the build.
    const list = await client.cli(["build", "list", "--tool", TOOL, "--json"]);
    expect(JSON.parse(list.stdout)).toMatchObject([{ id: buildId, status: "success" }]);
    const page = await viaProxy(restarted.config.port, TOOL);
    expect(page.body).toContain("built while the API was down");
  }, 900_000);
});
