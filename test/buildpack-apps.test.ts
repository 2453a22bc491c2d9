import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../services/platform/env.js";
import { createLogger } from "../services/platform/logger.js";
import { freePort } from "../services/platform/net.js";
import { run } from "../services/platform/process.js";
import { startServer, type RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, waitFor } from "./helpers/apps.js";
import { registryHostOf, removeAtEnd } from "./helpers/leftovers.js";
import { TEST_STACK_HOME, testBuildBackend } from "./helpers/stack.js";

/**
 * One sample app per buildpack (and the mixed and Aptfile apps) from test/fixtures/apps, each pushed to
 * Slipway's own git remote on the local profile, built, released and asserted through the front proxy
 * with content only the runtime that ran could produce. One server for all of them; builds in sequence.
 */
const repoRoot = path.resolve(import.meta.dirname, "..");
const FIXTURES = path.join(repoRoot, "test", "fixtures", "apps");
// A cold build downloads Node.js, Debian packages or a Go toolchain into a fresh cache.
const LONG = 600_000;

let home: string;
let server: RunningServer;
let port: number;
const repos: string[] = [];
const figures: string[] = [];

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  phase: string | null;
  release_id: string | null;
  log_tail: string[];
}

interface ToolView {
  name: string;
  token: string;
  git_url: string;
}

async function api<T>(route: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${server.url}${route}`, {
    ...init,
    headers: { authorization: `Bearer ${server.adminToken}`, "content-type": "application/json" },
  });
  const body = (await res.json()) as T;
  if (!res.ok) throw new Error(`${route}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** The real CLI, as `slipway` runs it (dist/ is built by `npm run build`). */
function cli(args: string[]) {
  return run(process.execPath, [path.join(repoRoot, "dist/services/main.js"), ...args], {
    env: { ...process.env, SLIPWAY_URL: server.url, SLIPWAY_TOKEN: server.adminToken },
    allowFailure: true,
  });
}

async function createTool(name: string): Promise<ToolView> {
  const tool = await api<ToolView>("/api/v1/tools", { method: "POST", body: JSON.stringify({ name }) });
  return tool;
}

function pushUrl(tool: ToolView): string {
  return tool.git_url.replace("http://", `http://user:${tool.token}@`);
}

function buildIdFrom(pushOutput: string): string {
  const m = /build (\w+) queued/.exec(pushOutput);
  if (!m) throw new Error(`no build id in push output:\n${pushOutput}`);
  return m[1]!;
}

async function buildDone(id: string): Promise<BuildView> {
  return waitFor(
    `build ${id}`,
    async () => {
      const b = await api<BuildView>(`/api/v1/builds/${id}`);
      return ["success", "failure", "cancelled", "superseded"].includes(b.status) ? b : undefined;
    },
    LONG,
    500,
  );
}

async function releaseLive(tool: string, build: BuildView): Promise<void> {
  expect(build.status, JSON.stringify(build)).toBe("success");
  const release = await waitFor(
    `release ${build.release_id}`,
    async () => {
      const list = await api<{ id: string; status: string }[]>(`/api/v1/tools/${tool}/deployments`);
      const r = list.find((x) => x.id === build.release_id);
      return r && r.status !== "deploying" ? r : undefined;
    },
    120_000,
  );
  expect(release.status, JSON.stringify(release)).toBe("live");
}

async function logLines(buildId: string): Promise<string[]> {
  return (await api<{ lines: string[] }>(`/api/v1/builds/${buildId}/logs`)).lines;
}

/** GET through the front proxy as a browser visiting http://<tool>.localhost would, with headers. */
function get(
  tool: string,
  urlPath = "/",
): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: urlPath, headers: { host: `${tool}.localhost:${port}` } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body, type: res.headers["content-type"] }),
        );
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
  });
}

/** A git work tree on main holding a copy of the fixture plus `extra` files, committed. */
async function fixtureRepo(name: string, extra: Record<string, string> = {}) {
  const repo = await gitRepo(extra, path.join(FIXTURES, name));
  repos.push(repo.dir);
  return repo;
}

/** Creates a tool, pushes the fixture to its remote and waits until the release is live. */
async function deployFixture(name: string) {
  const tool = await createTool(`bp-${name}`);
  const repo = await fixtureRepo(name);
  const started = Date.now();
  const out = await git(repo.dir, ["push", pushUrl(tool), "main"]);
  const build = await buildDone(buildIdFrom(out));
  if (build.status !== "success") console.log(`${name} build log:\n${build.log_tail.join("\n")}`);
  await releaseLive(tool.name, build);
  figures.push(`${name}: first build and release ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return { tool, repo, build };
}

beforeAll(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "slipway-bpapps-"));
  port = await freePort();
  const config = loadConfig({
    SLIPWAY_HOME: home,
    SLIPWAY_STACK_HOME: TEST_STACK_HOME,
    SLIPWAY_PORT: String(port),
    SLIPWAY_REGISTRY_PORT: String(await freePort()),
    SLIPWAY_REDIS_PORT: String(await freePort()),
    SLIPWAY_LOG_LEVEL: process.env.SLIPWAY_TEST_LOG_LEVEL ?? "warn",
    SLIPWAY_HEALTH_TIMEOUT_S: "30",
    ...testBuildBackend(),
  });
  removeAtEnd(home, registryHostOf(config));
  server = await startServer(config, createLogger({ level: config.logLevel, destination: process.stderr }));
  await server.ready;
}, 1_200_000);

afterAll(async () => {
  if (figures.length > 0) console.log(["buildpack apps:", ...figures].join("\n  "));
  // Its containers, networks and pulled images go at the file's end (removeAtEnd).
  await server?.close();
  for (const dir of repos) await rm(dir, { recursive: true, force: true });
  if (home) await rm(home, { recursive: true, force: true });
});

describe("one sample app per buildpack, pushed and served on the local profile", () => {
  it(
    "nodejs: runs Node.js 22 with the lockfile's dependencies",
    async () => {
      const { tool } = await deployFixture("nodejs");
      expect(await get(tool.name)).toMatchObject({ status: 200, body: "node 22 is-odd(3)=true\n" });
    },
    LONG,
  );

  it(
    "python: runs app.py with the stack's Python 3",
    async () => {
      const { tool } = await deployFixture("python");
      const res = await get(tool.name);
      expect(res.status).toBe(200);
      expect(res.body).toMatch(/^python 3\.\d+\n$/);
    },
    LONG,
  );

  it(
    "php: serves index.php through php -S",
    async () => {
      const { tool } = await deployFixture("php");
      const res = await get(tool.name);
      expect(res.status).toBe(200);
      // PHP_MAJOR_VERSION and the built-in server's SAPI: only a running PHP prints these.
      expect(res.body).toMatch(/^php 8 CLI-SERVER\n$/);
    },
    LONG,
  );

  it(
    "go: serves the binary compiled from main.go",
    async () => {
      const { tool } = await deployFixture("go");
      const res = await get(tool.name);
      expect(res.status).toBe(200);
      expect(res.body).toMatch(/^built with go1\.\d+/);
    },
    LONG,
  );

  it(
    "static: serves public/ with the CSS as text/css",
    async () => {
      const { tool } = await deployFixture("static");
      const home = await get(tool.name);
      expect(home.status).toBe(200);
      expect(home.body).toContain("hello from the static fixture");
      const css = await get(tool.name, "/site.css");
      expect(css.status).toBe(200);
      expect(css.type).toMatch(/^text\/css/);
      expect(css.body).toContain("rebeccapurple");
    },
    LONG,
  );

  it(
    "procfile: runs the Procfile's web command on $PORT",
    async () => {
      const { tool } = await deployFixture("procfile");
      expect(await get(tool.name, "/hello.txt")).toMatchObject({
        status: 200,
        body: "served by a Procfile command\n",
      });
    },
    LONG,
  );

  it(
    "mixed: Python serves the asset the Node.js build wrote",
    async () => {
      const { tool } = await deployFixture("mixed");
      const asset = await get(tool.name, "/app.js");
      expect(asset.status).toBe(200);
      expect(asset.body).toContain("built by Node.js 22");
      const api = await get(tool.name, "/api");
      expect(JSON.parse(api.body)).toMatchObject({ python: expect.stringMatching(/^3\./) });
    },
    LONG,
  );

  it(
    "vite-svelte: Vite 8 builds the Svelte page with devDependencies and `web: npm start` serves it",
    async () => {
      const { tool } = await deployFixture("vite-svelte");
      const page = await get(tool.name);
      expect(page.status).toBe(200);
      expect(page.body).toContain('<div id="app"></div>');
      // The built bundle (a hashed name Vite chose), with the component compiled in.
      const script = /src="(\/assets\/index-[\w-]+\.js)"/.exec(page.body);
      expect(script, page.body).not.toBeNull();
      const js = await get(tool.name, script![1]);
      expect(js.status).toBe(200);
      expect(js.body).toContain("Hello from Svelte on Toolforge");
    },
    LONG,
  );

  it(
    "apt-jq: the app runs jq installed from its Aptfile",
    async () => {
      const { tool } = await deployFixture("apt-jq");
      expect(await get(tool.name, "/jq")).toMatchObject({ status: 200, body: '{"sum":6}\n' });
    },
    LONG,
  );
});

describe("build start --no-cache", () => {
  it(
    "reinstalls node_modules and still serves; a later --force build reuses the cache again",
    async () => {
      const tool = "bp-nodejs";
      const started = await cli(["build", "start", "--tool", tool, "--no-cache", "--json"]);
      expect(started.code, started.stderr).toBe(0);
      const fresh = JSON.parse(started.stdout) as { status: string; build_id: string };
      expect(fresh.status).toBe("queued");
      const noCache = await buildDone(fresh.build_id);
      await releaseLive(tool, noCache);
      const freshLog = (await logLines(fresh.build_id)).join("\n");
      expect(freshLog).toMatch(/Installing dependencies with npm ci/);
      expect(freshLog).not.toMatch(/Reusing node_modules|Reusing production node_modules/);
      expect(await get(tool)).toMatchObject({ status: 200, body: "node 22 is-odd(3)=true\n" });

      const again = await cli(["build", "start", "--tool", tool, "--force", "--json"]);
      expect(again.code, again.stderr).toBe(0);
      const warm = JSON.parse(again.stdout) as { build_id: string };
      const warmBuild = await buildDone(warm.build_id);
      await releaseLive(tool, warmBuild);
      const warmLog = (await logLines(warm.build_id)).join("\n");
      expect(warmLog).toMatch(/Reusing (production )?node_modules/);
      expect(warmLog).not.toMatch(/Installing dependencies with npm ci/);
      expect(await get(tool)).toMatchObject({ status: 200, body: "node 22 is-odd(3)=true\n" });
    },
    LONG,
  );
});

describe("deploy: { tags } in slipway.yaml", () => {
  it(
    "a push to main deploys nothing and says why; pushing tag v1.0 deploys the tagged commit",
    async () => {
      const tool = await createTool("bp-tagged");
      const repo = await fixtureRepo("procfile", {
        "slipway.yaml": [
          "components:",
          "  web:",
          "    run:",
          "      command: web",
          "      port: 8000",
          "      publish: /",
          "deploy:",
          "  branches: []",
          '  tags: ["v*"]',
          "",
        ].join("\n"),
      });
      // The tool has no policy yet (default: main deploys), so this push fetches the commit, reads its
      // slipway.yaml and stops before any buildpack runs.
      const first = await git(repo.dir, ["push", pushUrl(tool), "main"]);
      const cancelled = await buildDone(buildIdFrom(first));
      expect(cancelled.status).toBe("cancelled");
      expect(cancelled.reason).toMatch(/^not deployed: branch main ignored/);
      expect((await get(tool.name)).status).not.toBe(200);

      // Now the stored policy answers the push itself.
      await repo.commit({ "www/hello.txt": "main moved on\n" }, "on main");
      const second = await git(repo.dir, ["push", pushUrl(tool), "main"]);
      expect(second).toMatch(/nothing to build for refs\/heads\/main: branch main ignored/);
      expect(second).not.toMatch(/queued/);

      // The tag points at the first commit: that is what must be served, not main's newer one.
      await git(repo.dir, ["tag", "v1.0", "HEAD~1"]);
      const tagged = await git(repo.dir, ["push", pushUrl(tool), "v1.0"]);
      expect(tagged).toMatch(/queued for refs\/tags\/v1\.0 \(.*v1\.0.*\)/);
      await releaseLive(tool.name, await buildDone(buildIdFrom(tagged)));
      expect(await get(tool.name, "/hello.txt")).toMatchObject({
        status: 200,
        body: "served by a Procfile command\n",
      });
    },
    LONG,
  );
});
