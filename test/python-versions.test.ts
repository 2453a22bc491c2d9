import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, viaProxy, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";
import { startPythonIndex } from "./helpers/python-index.js";

/**
 * Python versions: a Flask app asking for 3.13 (`.python-version`, as Toolforge tools do) builds on
 * the Debian trixie stack and goes live; `python` runs python3; 3.12 is refused naming 3.11 and 3.13.
 * Real Redis, registry, podman and git; packages from a local index of wheels made from Debian's
 * python3-flask and python3-gunicorn (no PyPI here). The trixie stack is built on first use.
 */
const TOOLS = ["py-flask313", "py-plain", "py-312"];
const FIXTURE = path.join(import.meta.dirname, "fixtures/apps/flask-gunicorn");

let server: RunningServer;
let port: number;
let home: string;
let indexDir: string;
let index: Awaited<ReturnType<typeof startPythonIndex>>;
const client = clientOf(() => server);

async function newTool(name: string): Promise<string> {
  const tool = await client.api<{ token: string; git_url: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name }),
  });
  return tool.git_url.replace("http://", `http://user:${tool.token}@`);
}

async function pushBuild(dir: string, url: string) {
  const out = await git(dir, ["push", "-f", url, "main"]);
  return client.buildDone<{ status: string; release_id: string | null }>(buildIdFrom(out));
}

async function live(tool: string, releaseId: string): Promise<void> {
  const release = await waitFor(
    `release ${releaseId}`,
    async () => {
      const r = await client.api<{ status: string }>(`/api/v1/tools/${tool}/releases/${releaseId}`);
      return r.status !== "deploying" ? r : undefined;
    },
    180_000,
  );
  expect(release.status, JSON.stringify(release)).toBe("live");
}

beforeAll(async () => {
  indexDir = await mkdtemp(path.join(os.tmpdir(), "slipway-pyindex-"));
  index = await startPythonIndex(indexDir, ["python3-flask", "python3-gunicorn"]);
  ({ server, port, home } = await startLocalServer({
    name: "python-versions",
    env: { SLIPWAY_PIP_INDEX_URL: index.url("host.containers.internal"), SLIPWAY_BUILD_TIMEOUT_S: "1800" },
  }));
}, 1_800_000);

afterAll(async () => {
  await server?.close();
  await index?.close();
  for (const tool of TOOLS) await removeToolContainers(tool);
  for (const dir of [home, indexDir]) if (dir) await rm(dir, { recursive: true, force: true });
});

describe("Python versions", () => {
  it("builds a Flask app asking for 3.13 on trixie, and it answers through gunicorn", async () => {
    const url = await newTool("py-flask313");
    const repo = await gitRepo({}, FIXTURE);
    const build = await pushBuild(repo.dir, url);
    expect(build.status, JSON.stringify(build)).toBe("success");
    await live("py-flask313", build.release_id!);
    expect(await viaProxy(port, "py-flask313", "/")).toEqual({ status: 200, body: "flask on Python 3.13\n" });
  }, 1_800_000);

  it("runs `web: python server.py`: python is python3 in the image", async () => {
    const url = await newTool("py-plain");
    const repo = await gitRepo({
      Procfile: "web: python server.py\n",
      "server.py": `import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("python %d.%d" % sys.version_info[:2]).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
`,
    });
    const build = await pushBuild(repo.dir, url);
    expect(build.status, JSON.stringify(build)).toBe("success");
    await live("py-plain", build.release_id!);
    expect(await viaProxy(port, "py-plain", "/")).toEqual({ status: 200, body: "python 3.11" });
  }, 900_000);

  it("refuses .python-version 3.12, naming the versions that exist", async () => {
    const url = await newTool("py-312");
    const repo = await gitRepo({ ".python-version": "3.12\n", "app.py": "print('hi')\n" });
    const build = await pushBuild(repo.dir, url);
    expect(build.status).toBe("failure");
    expect(JSON.stringify(build)).toContain(
      ".python-version asks for Python 3.12, which Slipway does not have: change .python-version to 3.11 or 3.13.",
    );
  }, 900_000);
});
