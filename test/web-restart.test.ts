import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, viaProxy, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";

/**
 * A web process that crashes comes back by itself on the local profile, with the reason in
 * `slipway webservice logs`, and waits longer while it keeps crashing; a stopped webservice stays
 * stopped. Real Redis, registry, podman and git; the CLI from dist/ (`npm run build` first).
 */
const TOOL = "crashy";

let server: RunningServer;
let port: number;
let home: string;
const client = clientOf(() => server);
const { api, cli } = client;

/**
 * A stdlib Python webservice that answers its start time (and " filled" once /fill wrote 40 MB to its
 * own filesystem), and exits with code 3 on /crash.
 */
const APP = {
  "app.py": `import http.server, os, time

STARTED = str(time.time())

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/crash":
            print("crashing on request", flush=True)
            os._exit(3)
        if self.path == "/fill":
            with open("/tmp/fill", "wb") as f:
                f.write(os.urandom(40 * 1024 * 1024))
        body = (STARTED + (" filled" if os.path.exists("/tmp/fill") else "")).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
`,
};

async function logsUntil(pattern: RegExp): Promise<string> {
  return waitFor(
    `webservice logs matching ${pattern}`,
    async () => {
      const r = await cli(["webservice", "logs", "--tool", TOOL]);
      if (r.code !== 0) throw new Error(r.stderr);
      return pattern.test(r.stdout) ? r.stdout : undefined;
    },
    30_000,
  );
}

/** The start time the app answers with, once it answers again. */
async function answering(notFrom?: string): Promise<string> {
  return waitFor(
    "the webservice to answer",
    async () => {
      const r = await viaProxy(port, TOOL, "/").catch(() => undefined);
      // A new process answers with another start time.
      return r?.status === 200 && r.body.split(" ")[0] !== notFrom ? r.body : undefined;
    },
    60_000,
  );
}

async function crash(): Promise<void> {
  // The process exits before it answers: the request fails, which is the point.
  await viaProxy(port, TOOL, "/crash").catch(() => undefined);
}

beforeAll(async () => {
  ({ server, port, home } = await startLocalServer({
    name: "web-restart",
    env: { SLIPWAY_HEALTH_TIMEOUT_S: "30", SLIPWAY_RUN_DISK_MB: "20" },
    config: { diskCheckMs: 2_000 },
  }));
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await removeToolContainers(TOOL);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("a crashed webservice", () => {
  it("comes back by itself, and its log says why", async () => {
    const tool = await api<{ token: string; git_url: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: TOOL }),
    });
    const url = tool.git_url.replace("http://", `http://user:${tool.token}@`);
    const repo = await gitRepo(APP);
    const out = await git(repo.dir, ["push", "-f", url, "main"]);
    const build = await client.buildDone<{ status: string }>(buildIdFrom(out));
    expect(build.status, JSON.stringify(build)).toBe("success");
    const first = await answering();

    await crash();
    const second = await answering(first);
    expect(second).not.toBe(first);
    const logs = await logsUntil(/exited with code 3/);
    expect(logs).toMatch(
      /crashing on request[\s\S]*slipway: web replica 0 exited with code 3 after \d+ s; restarting it now/,
    );
  }, 900_000);

  it("waits before the next restart while it keeps crashing right after starting", async () => {
    const before = await answering();
    await crash();
    await logsUntil(/restarting in 10 s \(2 crashes in a row/);
    // Still down during the wait; then back on its own.
    const status = await cli(["webservice", "status", "--tool", TOOL, "--json"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: "missing" });
    expect(await answering(before)).not.toBe(before);
  }, 180_000);

  it("is stopped when it writes past SLIPWAY_RUN_DISK_MB, and comes back on a fresh filesystem", async () => {
    const before = await answering();
    expect((await viaProxy(port, TOOL, "/fill")).body).toBe(`${before} filled`);
    const logs = await logsUntil(/over the 20 MiB limit/);
    expect(logs).toMatch(
      /slipway: web replica 0 wrote 4\d MiB to its own filesystem, over the 20 MiB limit \(SLIPWAY_RUN_DISK_MB\): stopped/,
    );
    const after = await answering(before);
    expect(after).not.toMatch(/filled/);
  }, 180_000);

  it("stays stopped after `webservice stop`", async () => {
    const stop = await cli(["webservice", "stop", "--tool", TOOL]);
    expect(stop.code, stop.stderr).toBe(0);
    // Two looks of the keeper (every 2 s) later, nothing came back.
    await new Promise((r) => setTimeout(r, 5_000));
    const status = await cli(["webservice", "status", "--tool", TOOL, "--json"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: "stopped" });
    expect((await viaProxy(port, TOOL, "/")).status).toBe(503);
  }, 60_000);
});
