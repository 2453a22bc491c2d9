import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisStore } from "../../services/adapters/store/redis-store.js";
import { TriggerService } from "../../services/domain/pipeline/triggers.js";
import { memoryLogger } from "../../services/platform/logger.js";
import { run } from "../../services/platform/process.js";
import { deriveSecret } from "../../services/platform/secrets.js";
import type { RunningServer } from "../../services/roles/server/server.js";
import { git, gitRepo, viaProxy } from "../helpers/apps.js";
import { clientOf, removeToolContainers, startLocalServer } from "../helpers/local-server.js";

/**
 * Tool A's owner tries to build tool B's source into A, with nothing but A's own credentials: a push
 * hook naming B's repository on Slipway, `build start --force` of a source that points there, and a
 * build already queued with it. B's files must never reach A, and each attempt says why it was refused.
 */
const A = "tenant-a";
const B = "tenant-b";
const SECRET = `b-only-${randomBytes(8).toString("hex")}`;

type CreatedTool = { name: string; token: string; git_url: string; webhook_secret: string };
type BuildView = { id: string; status: string; reason: string | null };

let server: RunningServer;
let home: string;
let port: number;
let redisUrl: string;
let a: CreatedTool;
let b: CreatedTool;
let bCommit: string;
let bUrl: string;

const { api, request, buildDone, cli } = clientOf(() => server);

async function createTool(name: string): Promise<CreatedTool> {
  return api<CreatedTool>("/api/v1/tools", { method: "POST", body: JSON.stringify({ name }) });
}

function withPassword(url: string, password: string, user = "user"): string {
  return url.replace("http://", `http://${user}:${encodeURIComponent(password)}@`);
}

/** `git ls-remote` as an outsider would run it; undefined when refused. */
async function lsRemote(url: string): Promise<string | undefined> {
  const out = await run("git", ["ls-remote", url], {
    allowFailure: true,
    env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
  });
  return out.code === 0 ? out.stdout : undefined;
}

beforeAll(async () => {
  let config;
  ({ server, home, port, config } = await startLocalServer({ name: "cross-tool" }));
  redisUrl = `redis://127.0.0.1:${config.redisPort}`;
  a = await createTool(A);
  b = await createTool(B);
  bUrl = b.git_url;
  // B's private source: a static site whose page only B should ever serve.
  const repo = await gitRepo({ "index.html": `${SECRET}\n` });
  bCommit = (await git(repo.dir, ["rev-parse", "HEAD"])).trim();
  const pushed = await git(repo.dir, ["push", withPassword(bUrl, b.token), "main"]);
  // B's own build is not what this test is about: stop it, so that only A's attempts run.
  const id = /build (\w+) queued/.exec(pushed)?.[1];
  if (id) await api(`/api/v1/builds/${id}/cancel`, { method: "POST" });
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await removeToolContainers(A);
  await removeToolContainers(B);
});

describe("tool A naming tool B's repository", () => {
  it("is refused at the webhook: a push hook signed with A's secret cannot name B's repository", async () => {
    const hook = JSON.parse(
      await readFile(path.join(import.meta.dirname, "../fixtures/gitlab/gitlab-push-hook.docs.json"), "utf8"),
    ) as { project: Record<string, unknown> };
    const res = await fetch(`${server.url}/hooks/gitlab/${A}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": "Push Hook",
        "x-gitlab-token": a.webhook_secret,
      },
      body: JSON.stringify({
        ...hook,
        ref: "refs/heads/main",
        after: bCommit,
        checkout_sha: bCommit,
        project: { ...hook.project, git_http_url: bUrl, default_branch: "main" },
      }),
    });
    const body = (await res.json()) as { error?: { message: string } };
    expect(res.status, JSON.stringify(body)).toBe(400);
    expect(body.error?.message).toContain(`project.git_http_url ${bUrl} is on this Slipway itself`);
    expect(await api<BuildView[]>(`/api/v1/tools/${A}/builds`)).toEqual([]);
  });

  it("is refused by build start --force when A's stored source points at B (stored before this fix)", async () => {
    const store = RedisStore.create(redisUrl);
    try {
      await store.updateTool(A, { source: { url: bUrl, ref: "refs/heads/main", default_branch: "main" } });
    } finally {
      await store.close();
    }
    const out = await cli(["build", "start", "--force", "--tool", A]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain(`${bUrl} is on this Slipway but is not tool ${A}'s own repository`);
    const res = await request<{ error: { code: string } }>(`/api/v1/tools/${A}/builds`, {
      method: "POST",
      body: JSON.stringify({ force: true }),
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe("source_rejected");
    expect(await api<BuildView[]>(`/api/v1/tools/${A}/builds`)).toEqual([]);
  });

  it("fails a build of A that was already queued with B's repository, and A never serves B's page", async () => {
    const store = RedisStore.create(redisUrl);
    let queued;
    try {
      const tool = await store.getTool(A);
      queued = await new TriggerService(store, memoryLogger()).push({
        tool: tool!,
        ref: "refs/heads/main",
        commit: bCommit,
        sourceUrl: bUrl,
        defaultBranch: "main",
        trigger: { kind: "api", ref: "refs/heads/main", actor: "test" },
        explicit: true,
        force: true,
      });
    } finally {
      await store.close();
    }
    expect(queued.status).toBe("queued");
    const build = await buildDone<BuildView>((queued as { build_id: string }).build_id);
    expect(build.status).toBe("failure");
    expect(build.reason).toContain(`is on this Slipway but is not tool ${A}'s own repository`);
    const logs = await api<{ lines: string[] }>(`/api/v1/builds/${build.id}/logs`);
    expect(logs.lines.join("\n")).not.toContain(SECRET);
    const page = await viaProxy(port, A);
    expect(page.body).not.toContain(SECRET);
  }, 900_000);
});

describe("the builder's credential for Slipway's git remote", () => {
  it("reads only the repository of the tool it was derived for, and cannot push", async () => {
    const master = (await readFile(path.join(home, "builder-secret"), "utf8")).trim();
    // The master secret itself opens nothing.
    expect(await lsRemote(withPassword(bUrl, master, "slipway-builder"))).toBeUndefined();
    // A's builder credential does not open B.
    expect(
      await lsRemote(withPassword(bUrl, deriveSecret(master, `git-fetch:${A}`), "slipway-builder")),
    ).toBeUndefined();
    // B's opens B, for fetching only.
    const bOwn = withPassword(bUrl, deriveSecret(master, `git-fetch:${B}`), "slipway-builder");
    expect(await lsRemote(bOwn)).toContain(bCommit);
    const repo = await gitRepo({ "index.html": "overwritten\n" });
    const push = await run("git", ["push", "--force", bOwn, "main"], {
      cwd: repo.dir,
      allowFailure: true,
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
    });
    expect(push.code).not.toBe(0);
    expect(await lsRemote(withPassword(bUrl, b.token))).toContain(bCommit);
  });
});
