import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, viaProxy, waitFor } from "./helpers/apps.js";
import { GitlabDouble, pushEvent } from "./helpers/gitlab-double.js";
import { capturedLogger, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";

/**
 * One real build of a linked tool: a push event from "GitLab" (the double, which also serves the
 * private repository to its deploy tokens only) → fetch with the stored deploy token → static
 * buildpack in podman → live → commit statuses pending, running, success on the double.
 */
const MAINTAINER = "glpat-maintainer-build-0123456789";
const PROJECT_ID = 77;
const PROJECT_PATH = "tools/private-site";
const TOOL = "private-site";
const serverLog = capturedLogger("info");

let home: string;
let port: number;
let gitlab: GitlabDouble;
let server: RunningServer;
let commit: string;

const { api } = clientOf(() => server);

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "slipway-gitlab-build-"));
  const work = await gitRepo({ "index.html": "<h1>private site</h1>\n" });
  commit = (await git(work.dir, ["rev-parse", "HEAD"])).trim();
  const reposDir = path.join(home, "gitlab-repos");
  await git(home, ["clone", "-q", "--bare", work.dir, path.join(reposDir, `${PROJECT_PATH}.git`)]);

  gitlab = await GitlabDouble.start();
  gitlab.addProject({ id: PROJECT_ID, path: PROJECT_PATH, defaultBranch: "main" });
  gitlab.addToken(MAINTAINER, { role: "maintainer" });
  gitlab.serveRepositories(reposDir);

  ({ server, port } = await startLocalServer({
    home: path.join(home, "slipway"),
    // The GitLab double is on loopback, as an operator's GitLab on a private network would be.
    env: {
      SLIPWAY_LOG_LEVEL: "info",
      SLIPWAY_HEALTH_TIMEOUT_S: "30",
      SLIPWAY_SOURCE_ALLOW_HOSTS: new URL(gitlab.url).host,
    },
    logger: serverLog.logger,
  }));
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  // The server leaves webservices running (a restart keeps serving); this test's is removed here.
  await removeToolContainers(TOOL);
  await gitlab?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

describe("a GitLab push to a linked tool with a private repository", () => {
  it("builds from the private project with the deploy token, goes live, and shows on the commit", async () => {
    const tool = await api<{ name: string; token: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: TOOL }),
    });
    await api(
      `/api/v1/tools/${tool.name}/gitlab`,
      {
        method: "POST",
        body: JSON.stringify({ url: gitlab.url, project: PROJECT_PATH, token: MAINTAINER }),
      },
      tool.token,
    );
    const hook = gitlab.hooks(PROJECT_ID)[0]!;
    const deployToken = gitlab.deployTokens(PROJECT_ID)[0]!;
    const gitUrl = `${gitlab.url}/${PROJECT_PATH}.git`;

    // The repository is private: without the deploy token the double refuses it.
    const anonymous = await fetch(`${gitUrl}/info/refs?service=git-upload-pack`);
    expect(anonymous.status).toBe(401);

    const res = await fetch(`${server.url}/hooks/gitlab/${tool.name}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": "Push Hook",
        "x-gitlab-token": hook.token!,
      },
      body: pushEvent({ id: PROJECT_ID, path: PROJECT_PATH, gitUrl }, commit),
    });
    expect(res.status).toBe(202);
    const { build_id: buildId } = (await res.json()) as { build_id: string };

    const build = await waitFor(
      `build ${buildId}`,
      async () => {
        const b = await api<{ status: string; reason: string | null; release_id: string | null }>(
          `/api/v1/builds/${buildId}`,
        );
        return ["success", "failure", "cancelled", "superseded"].includes(b.status) ? b : undefined;
      },
      600_000,
      500,
    );
    expect(build.status, JSON.stringify(build)).toBe("success");
    const success = await waitFor(
      "the success status",
      () => Promise.resolve(gitlab.statuses(PROJECT_ID, commit).find((s) => s.status === "success")),
      180_000,
      500,
    );
    expect(success).toMatchObject({
      name: "slipway/web",
      ref: "main",
      target_url: `${server.url}/api/v1/builds/${buildId}/logs`,
    });
    const posted = gitlab
      .requestsTo("POST", new RegExp(`/projects/${PROJECT_ID}/statuses/${commit}$`))
      .map((r) => r.body.state);
    expect(posted).toEqual(["pending", "running", "success"]);
    const page = await viaProxy(port, tool.name);
    expect(page.status).toBe(200);
    expect(page.body).toContain("private site");

    const log = await api<{ lines: string[] }>(`/api/v1/builds/${buildId}/logs`);
    expect(log.lines.join("\n")).toContain(`===> FETCHING ${gitUrl}`);
    for (const text of [log.lines.join("\n"), serverLog.text()]) {
      expect(text).not.toContain(deployToken.token);
      expect(text).not.toContain(MAINTAINER);
    }
  }, 900_000);
});
