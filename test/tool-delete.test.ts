import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podman } from "../services/adapters/podman/podman.js";
import type { Config } from "../services/platform/env.js";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, viaProxy, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";

/**
 * `slipway tools delete` (issue 12, item 10): a tool that was pushed, went live, ran a job and had an
 * environment variable leaves no trace after it is deleted, and another tool is untouched. Real Redis,
 * registry, podman and git; the CLI from dist/ (`npm run build` first).
 */
const GONE = "del-gone";
const KEPT = "del-kept";

let server: RunningServer;
let port: number;
let home: string;
let config: Config;
const client = clientOf(() => server);
const { api, request, buildDone, cli } = client;

function app(version: string): Record<string, string> {
  return {
    "app.py": `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"${version}"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
`,
  };
}

/** Creates a tool, sets an env var, pushes an app and waits until it is live; returns its token. */
async function liveTool(name: string): Promise<string> {
  const tool = await api<{ token: string; git_url: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name }),
  });
  await api(`/api/v1/tools/${name}/envvars/GREETING`, {
    method: "PUT",
    body: JSON.stringify({ value: "hi" }),
  });
  const repo = await gitRepo(app(name));
  const out = await git(repo.dir, [
    "push",
    tool.git_url.replace("http://", `http://user:${tool.token}@`),
    "main",
  ]);
  const build = await buildDone<{ status: string; release_id: string | null }>(buildIdFrom(out));
  expect(build.status, JSON.stringify(build)).toBe("success");
  await waitFor(
    `${name} live`,
    async () => ((await viaProxy(port, name)).body === name ? true : undefined),
    180_000,
  );
  return tool.token;
}

async function containersOf(tool: string): Promise<string[]> {
  const r = await podman(["ps", "-a", "-q", "--filter", `label=io.slipway.tool=${tool}`], {
    repoRoot: config.repoRoot,
  });
  return r.stdout.split("\n").filter(Boolean);
}

async function localImagesOf(tool: string, registryHost: string): Promise<string[]> {
  const r = await podman(["images", "-q", "--filter", `reference=${registryHost}/tool-${tool}/*`], {
    repoRoot: config.repoRoot,
  });
  return r.stdout.split("\n").filter(Boolean);
}

/** The embedded registry, asked as a client would, with its own credentials. */
async function registry(route: string): Promise<{ status: number; body: unknown }> {
  const creds = JSON.parse(await readFile(path.join(home, "registry", "credentials.json"), "utf8")) as {
    username: string;
    password: string;
  };
  const res = await fetch(`http://127.0.0.1:${config.registryPort}${route}`, {
    headers: {
      authorization: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`,
    },
  });
  return { status: res.status, body: await res.json() };
}

/** Every Redis key naming `tool` as a whole segment. */
async function redisKeysOf(tool: string): Promise<string[]> {
  const redis = new Redis(`redis://127.0.0.1:${config.redisPort}`);
  try {
    const keys = await redis.keys("*");
    return keys.filter((k) => k.split(":").includes(tool));
  } finally {
    redis.disconnect();
  }
}

beforeAll(async () => {
  ({ server, port, home, config } = await startLocalServer({
    name: "tool-delete",
    env: { SLIPWAY_HEALTH_TIMEOUT_S: "30" },
  }));
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await removeToolContainers(GONE);
  await removeToolContainers(KEPT);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("tools delete", () => {
  let goneToken: string;
  const registryHost = () => `127.0.0.1:${config.registryPort}`;

  it("sets up two live tools, one running a continuous job", async () => {
    goneToken = await liveTool(GONE);
    await liveTool(KEPT);
    await api(`/api/v1/tools/${GONE}/jobs`, {
      method: "POST",
      body: JSON.stringify({
        name: "worker",
        command: "python3 -c 'import time; time.sleep(3600)'",
        continuous: true,
      }),
    });
    await waitFor(
      "the job's container",
      async () => {
        const r = await podman(
          [
            "ps",
            "-q",
            "--filter",
            `label=io.slipway.tool=${GONE}`,
            "--filter",
            "label=io.slipway.job=worker",
          ],
          { repoRoot: config.repoRoot },
        );
        return r.stdout.trim() ? true : undefined;
      },
      120_000,
    );
    expect((await localImagesOf(GONE, registryHost())).length).toBeGreaterThan(0);
    expect((await registry("/v2/_catalog")).body).toMatchObject({
      repositories: expect.arrayContaining([`tool-${GONE}/web`, `tool-${KEPT}/web`]) as unknown,
    });
  }, 1_200_000);

  it("refuses the tool's own token (403): only the admin may delete", async () => {
    const r = await request<{ error: { code: string } }>(
      `/api/v1/tools/${GONE}`,
      { method: "DELETE" },
      goneToken,
    );
    expect(r.status).toBe(403);
    expect((await api<{ name: string }>(`/api/v1/tools/${GONE}`)).name).toBe(GONE);
  });

  it("removes every trace of the tool and leaves the other alone", async () => {
    const deleted = await cli(["tools", "delete", GONE]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toContain(`${GONE}: deleted`);

    expect(await containersOf(GONE)).toEqual([]);
    expect(await localImagesOf(GONE, registryHost())).toEqual([]);
    const networks = await podman(["network", "ls", "--format", "{{.Name}}"], { repoRoot: config.repoRoot });
    expect(networks.stdout.split("\n").filter((n) => n.endsWith(`-${GONE}`))).toEqual([]);

    const catalog = (await registry("/v2/_catalog")).body as { repositories: string[] };
    expect(catalog.repositories.filter((r) => r.startsWith(`tool-${GONE}/`))).toEqual([]);
    expect(catalog.repositories).toContain(`tool-${KEPT}/web`);
    expect((await registry(`/v2/tool-${GONE}/web/tags/list`)).status).toBe(404);

    expect(existsSync(path.join(home, "repos", `${GONE}.git`))).toBe(false);
    expect(await redisKeysOf(GONE)).toEqual([]);
    expect(await request(`/api/v1/tools/${GONE}`)).toMatchObject({ status: 404 });
    expect((await viaProxy(port, GONE)).status).toBe(404);
    // The old token is gone with the tool.
    expect((await request("/api/v1/tools", {}, goneToken)).status).toBe(401);

    // The other tool still serves, keeps its env var, repository and image.
    expect(await viaProxy(port, KEPT)).toEqual({ status: 200, body: KEPT });
    const vars = await api<{ name: string }[]>(`/api/v1/tools/${KEPT}/envvars`);
    expect(vars.map((v) => v.name)).toContain("GREETING");
    expect(existsSync(path.join(home, "repos", `${KEPT}.git`))).toBe(true);
    expect((await containersOf(KEPT)).length).toBeGreaterThan(0);
    expect((await registry(`/v2/tool-${KEPT}/web/tags/list`)).status).toBe(200);
  });

  it("lets a new tool of the same name be created and pushed again", async () => {
    // The registry must not believe it still has the deleted repository's layers.
    await liveTool(GONE);
  }, 1_200_000);
});
