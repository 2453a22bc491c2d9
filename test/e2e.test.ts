import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../services/platform/net.js";
import { createGitRemote } from "../services/adapters/git/http-backend.js";
import { loadConfig } from "../services/platform/env.js";
import { memoryLogger } from "../services/platform/logger.js";
import { startServer, type RunningServer } from "../services/roles/server/server.js";
import { errorHandler } from "../services/roles/http/errors.js";
import { podman } from "../services/adapters/podman/podman.js";
import { git, gitRepo, nodeApp, pythonApp, serverJs, viaProxy, waitFor } from "./helpers/apps.js";
import express from "express";
import { readFileSync } from "node:fs";
import {
  buildIdFrom,
  clientOf,
  removeToolContainers,
  startLocalServer,
  stderrLogger,
} from "./helpers/local-server.js";
import { TEST_STACK_HOME } from "./helpers/stack.js";

/**
 * The whole local profile as a maintainer meets it: `git push` (or a GitLab hook) → buildpacks in podman
 * → image in the registry → live at http://<tool>.localhost. Real Redis, registry, podman and git.
 */
const STACK_HOME = TEST_STACK_HOME;

let home: string;
let server: RunningServer;
let port: number;
let config: ReturnType<typeof loadConfig>;

const repoRoot = path.resolve(import.meta.dirname, "..");

const client = clientOf(() => server);
const { api, cli } = client;

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  phase: string | null;
  buildpack: string | null;
  image_digest: string | null;
  release_id: string | null;
  log_tail: string[];
}

async function createTool(name: string) {
  return api<{ name: string; token: string; git_url: string; webhook_secret: string; webhook_url: string }>(
    "/api/v1/tools",
    {
      method: "POST",
      body: JSON.stringify({ name }),
    },
  );
}

function pushUrl(tool: { git_url: string; token: string }): string {
  return tool.git_url.replace("http://", `http://user:${tool.token}@`);
}

const buildDone = (id: string) => client.buildDone<BuildView>(id);

async function releaseSettled(tool: string, releaseId: string) {
  return waitFor(
    `release ${releaseId}`,
    async () => {
      const list = await api<{ id: string; status: string; reason?: string }[]>(
        `/api/v1/tools/${tool}/deployments`,
      );
      const r = list.find((x) => x.id === releaseId);
      return r && r.status !== "deploying" ? r : undefined;
    },
    120_000,
  );
}

/** The GitLab stand-in's port, known before the server starts so that it can be allow-listed. */
let forgePort: number;

beforeAll(async () => {
  forgePort = await freePort();
  ({ server, port, home, config } = await startLocalServer({
    name: "e2e",
    env: {
      SLIPWAY_STACK_HOME: STACK_HOME,
      SLIPWAY_HEALTH_TIMEOUT_S: "20",
      // The stand-in is on loopback, where only an allowed host may be fetched from.
      SLIPWAY_SOURCE_ALLOW_HOSTS: `127.0.0.1:${forgePort}`,
    },
  }));
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  // Only this file's tools: every test server shares the owner label, and others may be running now.
  for (const tool of ["hello-node", "hello-py", "glab", "cancel-me", "cli-tool"])
    await removeToolContainers(tool);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("push to deploy on the local profile", () => {
  let node: Awaited<ReturnType<typeof gitRepo>>;
  let nodeTool: Awaited<ReturnType<typeof createTool>>;

  it("deploys a Node app with an npm dependency from git push, reachable at <tool>.localhost", async () => {
    nodeTool = await createTool("hello-node");
    node = await gitRepo(await nodeApp("hello v1"));
    const out = await git(node.dir, ["push", pushUrl(nodeTool), "main"]);
    expect(out).toContain("slipway build logs");
    // What the push output suggests: follow the log until the build ends.
    const followed = await cli(["build", "logs", buildIdFrom(out), "-f"]);
    expect(followed.code).toBe(0);
    expect(followed.stdout).toMatch(/===> DETECTING[\s\S]*===> BUILDING[\s\S]*===> EXPORTING/);
    expect(followed.stdout.trimEnd().split("\n").pop()).toMatch(/^--- build success/);
    const build = await buildDone(buildIdFrom(out));
    expect(build.status, JSON.stringify(build)).toBe("success");
    expect(build.image_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const release = await releaseSettled("hello-node", build.release_id!);
    expect(release.status, JSON.stringify(release)).toBe("live");
    expect(await viaProxy(port, "hello-node")).toEqual({ status: 200, body: "hello v1" });
  });

  it("switches to a second push with no failed request while polling through the switch", async () => {
    let polling = true;
    const seen = new Map<string, number>();
    // What each failed request got, so a failure says whether it was the proxy, the app or the socket.
    const failures: string[] = [];
    const poller = (async () => {
      while (polling) {
        try {
          const r = await viaProxy(port, "hello-node");
          if (r.status !== 200) failures.push(`${r.status} ${r.body.slice(0, 200)}`);
          seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
        } catch (error) {
          failures.push(String(error));
        }
      }
    })();
    await node.commit({ "server.js": serverJs("hello v2") }, "v2");
    const out = await git(node.dir, ["push", pushUrl(nodeTool), "main"]);
    const build = await buildDone(buildIdFrom(out));
    expect(build.status, JSON.stringify(build)).toBe("success");
    expect((await releaseSettled("hello-node", build.release_id!)).status).toBe("live");
    await waitFor(
      "v2 served",
      async () => ((await viaProxy(port, "hello-node")).body === "hello v2" ? true : undefined),
      30_000,
    );
    await new Promise((r) => setTimeout(r, 2500));
    polling = false;
    await poller;
    expect(failures).toEqual([]);
    expect(seen.get("hello v1")).toBeGreaterThan(0);
    expect(seen.get("hello v2")).toBeGreaterThan(0);
  });

  it("reports the failing phase and buildpack of a broken build, and keeps the old release serving", async () => {
    await node.commit({ Procfile: "web node server.js\n" }, "broken Procfile");
    const out = await git(node.dir, ["push", pushUrl(nodeTool), "main"]);
    const build = await buildDone(buildIdFrom(out));
    expect(build.status).toBe("failure");
    expect(build.phase).toBe("build");
    expect(build.buildpack).toBe("slipway/procfile");
    expect(build.reason).toMatch(/Procfile/);
    expect(build.log_tail.length).toBeGreaterThan(0);
    expect(await viaProxy(port, "hello-node")).toEqual({ status: 200, body: "hello v2" });
  });

  it("deploys a Python standard-library app", async () => {
    const tool = await createTool("hello-py");
    const repo = await gitRepo(pythonApp("hello from python"));
    const out = await git(repo.dir, ["push", pushUrl(tool), "main"]);
    const build = await buildDone(buildIdFrom(out));
    expect(build.status, JSON.stringify(build)).toBe("success");
    expect((await releaseSettled("hello-py", build.release_id!)).status).toBe("live");
    expect(await viaProxy(port, "hello-py")).toEqual({ status: 200, body: "hello from python" });
  });

  it("deploys from a GitLab Push Hook pointing at a repository served over HTTP", async () => {
    // A stand-in for gitlab.example.com: the same smart-HTTP git remote code, on its own port, no auth.
    const forgeDir = await mkdtemp(path.join(os.tmpdir(), "slipway-forge-"));
    const forge = createGitRemote({
      reposDir: forgeDir,
      logger: memoryLogger(),
      authorize: () => Promise.resolve(true),
      onPush: () => Promise.resolve("ok"),
    });
    const app = express();
    app.post("/internal/git-hook", forge.hookHandler);
    app.use("/git", forge.router);
    app.use(errorHandler(memoryLogger()));
    const forgeServer = app.listen(forgePort, "127.0.0.1");
    try {
      const repo = await gitRepo(pythonApp("hello from gitlab"));
      await git(repo.dir, ["push", `http://u:p@127.0.0.1:${forgePort}/git/glab.git`, "main"]);
      const sha = (await git(repo.dir, ["rev-parse", "HEAD"])).trim();
      const tool = await createTool("glab");
      const hook = JSON.parse(
        readFileSync(path.join(import.meta.dirname, "fixtures/gitlab/gitlab-push-hook.docs.json"), "utf8"),
      ) as {
        project: Record<string, unknown>;
      };
      const body = {
        ...hook,
        ref: "refs/heads/main",
        after: sha,
        checkout_sha: sha,
        // Our stand-in forge serves nothing anonymously, so the URL carries credentials, which the
        // fetcher moves into isomorphic-git's onAuth (as for a private repository).
        project: {
          ...hook.project,
          default_branch: "main",
          git_http_url: `http://reader:pw@127.0.0.1:${forgePort}/git/glab.git`,
        },
      };
      const res = await fetch(tool.webhook_url.replace(/^http:\/\/[^/]+/, server.url), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-gitlab-event": "Push Hook",
          "x-gitlab-token": tool.webhook_secret,
        },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(202);
      const { build_id } = (await res.json()) as { build_id: string };
      const build = await buildDone(build_id);
      expect(build.status, JSON.stringify(build)).toBe("success");
      expect((await releaseSettled("glab", build.release_id!)).status).toBe("live");
      expect(await viaProxy(port, "glab")).toEqual({ status: 200, body: "hello from gitlab" });
    } finally {
      forgeServer.close();
      await rm(forgeDir, { recursive: true, force: true });
    }
  });

  it("cancels a running build within seconds and stops its container", async () => {
    const tool = await createTool("cancel-me");
    // A build that would run for minutes: its npm install sleeps.
    const pkg = {
      name: "slow",
      version: "1.0.0",
      private: true,
      scripts: { start: "node x.js", preinstall: "sleep 300" },
    };
    const repo = await gitRepo({ "package.json": JSON.stringify(pkg), "x.js": "" });
    const id = buildIdFrom(await git(repo.dir, ["push", pushUrl(tool), "main"]));
    await waitFor(
      "the build to run",
      async () => ((await api<BuildView>(`/api/v1/builds/${id}`)).phase === "build" ? true : undefined),
      120_000,
    );
    const cancelled = await cli(["build", "cancel", id, "--json"]);
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ status: "cancelled" });
    await waitFor(
      "the build container to go",
      async () => {
        const ps = await podman(["ps", "-q", "--filter", `name=slipway-build-${id}`], { repoRoot });
        return ps.stdout.trim() === "" ? true : undefined;
      },
      30_000,
    );
    expect((await api<BuildView>(`/api/v1/builds/${id}`)).status).toBe("cancelled");
  });

  it("answers the CLI with the keys scripts rely on", async () => {
    const created = await cli(["tools", "create", "cli-tool", "--json"]);
    expect(created.code, created.stderr).toBe(0);
    const t = JSON.parse(created.stdout) as Record<string, string>;
    for (const key of ["name", "token", "git_url", "webhook_url", "webhook_secret", "redeploy_url"])
      expect(t[key]).toBeTruthy();
    const bad = await cli(["tools", "create", "Not_Valid"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("invalid tool name");
    const builds = await cli(["build", "list", "--tool", "hello-node", "--json"]);
    const list = JSON.parse(builds.stdout) as Record<string, unknown>[];
    expect(list.length).toBe(3);
    for (const key of ["id", "status", "commit", "image", "image_digest"])
      expect(list[0]).toHaveProperty(key);
    expect(list.filter((b) => b.status === "success").length).toBe(2);
  });

  it("keeps every tool, build and release, and the live app, across a restart", async () => {
    const before = await api<{ id: string }[]>("/api/v1/tools/hello-node/deployments");
    await server.close();
    // As after a reboot: the tool's containers are gone too.
    const ids = await podman(["ps", "-q", "--filter", "label=io.slipway.tool=hello-node"], { repoRoot });
    await podman(["rm", "-f", "-t", "0", ...ids.stdout.split("\n").filter(Boolean)], { repoRoot });
    expect(ids.stdout.trim()).not.toBe("");
    server = await startServer(config, stderrLogger(config));
    await server.ready;
    const tools = await api<{ name: string }[]>("/api/v1/tools");
    expect(tools.map((t) => t.name)).toEqual(
      expect.arrayContaining(["hello-node", "hello-py", "glab", "cli-tool"]),
    );
    expect((await api<{ id: string }[]>("/api/v1/tools/hello-node/deployments")).map((r) => r.id)).toEqual(
      before.map((r) => r.id),
    );
    const served = await waitFor(
      "hello-node back after the restart",
      async () => {
        const r = await viaProxy(port, "hello-node");
        return r.status === 200 ? r : undefined;
      },
      60_000,
    );
    expect(served.body).toBe("hello v2");
  });
});
