import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../services/roles/server/server.js";
import { git, gitRepo, viaProxy, waitFor } from "../helpers/apps.js";
import { GitlabDouble, pushEvent } from "../helpers/gitlab-double.js";
import { clientOf, removeToolContainers, startLocalServer } from "../helpers/local-server.js";
import { roleServers } from "../helpers/role-servers.js";

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
let roles: Awaited<ReturnType<typeof roleServers>> | undefined;
let gitlab: GitlabDouble;
let commit: string;
let api: RunningServer | undefined;
const others: RunningServer[] = [];

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

  // Every role shares the home (encryption key, builder secret), Redis, registry and public URL.
  roles = await roleServers(tmp, {
    // The GitLab double serves the repository on loopback, which source fetches refuse unless allowed.
    SLIPWAY_SOURCE_ALLOW_HOSTS: new URL(gitlab.url).host,
  });
}, 1_200_000);

afterAll(async () => {
  await api?.close();
  for (const s of others) await s.close();
  await removeToolContainers(TOOL);
  await roles?.stop();
  await gitlab?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("commit statuses of a build that ran while the API role was stopped", () => {
  it("are posted when the API role starts again: pending, running, success, each once", async () => {
    api = (await startLocalServer(roles!.options("api"))).server;
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
    others.push((await startLocalServer(roles!.options("deployer"))).server);
    others.push((await startLocalServer(roles!.options("builder"))).server);
    const built = await roles!.buildEnded(buildId);
    expect(built.status, JSON.stringify(built)).toBe("success");
    const live = await waitFor(
      "the release",
      async () => {
        const r = built.release_id ? await roles!.store.getRelease(built.release_id) : undefined;
        return r && r.status !== "deploying" ? r : undefined;
      },
      180_000,
      500,
    );
    expect(live.status, JSON.stringify(live)).toBe("live");
    // Nothing reached GitLab while no API process ran.
    expect(gitlab.postedStates(PROJECT_ID, commit)).toEqual(atStop);

    const restarted = await startLocalServer(roles!.options("api"));
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
