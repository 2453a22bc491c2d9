import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../../services/roles/server/server.js";
import { GitlabDouble, PUSH_HOOK } from "../helpers/gitlab-double.js";
import { clientOf, startLocalServer } from "../helpers/local-server.js";

/**
 * A push hook of a linked tool is signed with a secret only GitLab holds, but its body is still only
 * what the sender wrote. The repository a linked tool builds from is the one GitLab's API named when
 * the tool was linked; the payload's `git_http_url` is ignored (and so cannot aim the deploy token or
 * the builder anywhere else).
 */
const MAINTAINER = "glpat-maintainer-linked-0123456789";
const PROJECT_ID = 91;
const PROJECT_PATH = "tools/linked-site";

let gitlab: GitlabDouble;
let server: RunningServer;
const { api, request } = clientOf(() => server);

beforeAll(async () => {
  gitlab = await GitlabDouble.start();
  gitlab.addProject({ id: PROJECT_ID, path: PROJECT_PATH, defaultBranch: "main" });
  gitlab.addToken(MAINTAINER, { role: "maintainer" });
  ({ server } = await startLocalServer({
    name: "linked-source",
    role: "api",
    ready: false,
    // The GitLab double is on loopback, which only an operator's allow-list lets Slipway call.
    env: { SLIPWAY_SOURCE_ALLOW_HOSTS: new URL(gitlab.url).host },
  }));
});

afterAll(async () => {
  await server?.close();
  await gitlab?.close();
});

describe("a linked tool's push hook", () => {
  it("builds from the linked project's repository, not from the payload's git_http_url", async () => {
    const tool = await api<{ name: string; token: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: "linked-site" }),
    });
    await api(
      `/api/v1/tools/${tool.name}/gitlab`,
      { method: "POST", body: JSON.stringify({ url: gitlab.url, project: PROJECT_PATH, token: MAINTAINER }) },
      tool.token,
    );
    const secret = gitlab.hooks(PROJECT_ID)[0]!.token!;
    const sha = "5a".repeat(20);
    const res = await fetch(`${server.url}/hooks/gitlab/${tool.name}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": "Push Hook",
        "x-gitlab-token": secret,
      },
      body: JSON.stringify({
        ...PUSH_HOOK,
        ref: "refs/heads/main",
        after: sha,
        checkout_sha: sha,
        project: {
          ...(PUSH_HOOK.project as object),
          id: PROJECT_ID,
          default_branch: "main",
          git_http_url: "https://elsewhere.example.org/someone/else.git",
        },
      }),
    });
    const body = (await res.json()) as { build_id: string };
    expect(res.status, JSON.stringify(body)).toBe(202);
    // The tool's source is what this build, `build start` and the redeploy hook fetch.
    const shown = await api<{ source: { url: string } | null }>(`/api/v1/tools/${tool.name}`);
    expect(shown.source?.url).toBe(`${gitlab.url}/${PROJECT_PATH}.git`);
  });

  it("cannot be linked to a GitLab on a loopback address the operator did not allow", async () => {
    const tool = await api<{ name: string; token: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: "linked-loopback" }),
    });
    // The allowed double's port under another name: `localhost` is not on the allow-list.
    const local = gitlab.url.replace("127.0.0.1", "localhost");
    const before = gitlab.requests.length;
    const res = await request<{ error: { code: string; message: string } }>(
      `/api/v1/tools/${tool.name}/gitlab`,
      { method: "POST", body: JSON.stringify({ url: local, project: PROJECT_PATH, token: MAINTAINER }) },
      tool.token,
    );
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain(`GitLab at ${new URL(local).host} is a loopback address`);
    expect(res.body.error.message).toContain("SLIPWAY_SOURCE_ALLOW_HOSTS");
    expect(gitlab.requests.length).toBe(before);
  });
});
