import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podman } from "../services/adapters/podman/podman.js";
import type { Config } from "../services/platform/env.js";
import { startServer, type RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, viaProxy, waitFor } from "./helpers/apps.js";
import {
  buildIdFrom,
  clientOf,
  removeToolContainers,
  startLocalServer,
  stderrLogger,
} from "./helpers/local-server.js";

/**
 * `slipway webservice status|logs|restart|stop|start` on the local profile: the web process's output
 * is kept per release in Redis and stays readable after a rollout removed its container. Real Redis,
 * registry, podman and git; the CLI from dist/ (`npm run build` first).
 */
const TOOL = "ws-logs";

let server: RunningServer;
let port: number;
let home: string;
let config: Config;
const client = clientOf(() => server);
const { api, cli } = client;

/** A stdlib Python webservice that prints one line per request (flushed), tagged with its version. */
function loggingApp(version: string): Record<string, string> {
  return {
    "app.py": `import http.server, os, sys

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("${version} served " + self.path, flush=True)
        body = b"${version}"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

print("${version} listening", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
`,
  };
}

interface Status {
  state: string;
  release_id: string | null;
  commit: string | null;
  image_digest: string | null;
  address: string | null;
  logged_releases: string[];
}

async function settled(releaseId: string) {
  return waitFor(
    `release ${releaseId}`,
    async () => {
      const r = await api<{ id: string; status: string; reason?: string }>(
        `/api/v1/tools/${TOOL}/releases/${releaseId}`,
      );
      return r.status !== "deploying" ? r : undefined;
    },
    180_000,
  );
}

async function push(repo: Awaited<ReturnType<typeof gitRepo>>, url: string): Promise<string> {
  const out = await git(repo.dir, ["push", "-f", url, "main"]);
  const build = await client.buildDone<{ status: string; release_id: string | null }>(buildIdFrom(out));
  expect(build.status, JSON.stringify(build)).toBe("success");
  const release = await settled(build.release_id!);
  expect(release.status, JSON.stringify(release)).toBe("live");
  return release.id;
}

/** `slipway webservice logs` until `pattern` shows (lines arrive in batches, off the request path). */
async function logsUntil(pattern: RegExp, extra: string[] = []): Promise<string> {
  return waitFor(
    `webservice logs matching ${pattern}`,
    async () => {
      const r = await cli(["webservice", "logs", "--tool", TOOL, ...extra]);
      if (r.code !== 0) throw new Error(r.stderr);
      return pattern.test(r.stdout) ? r.stdout : undefined;
    },
    20_000,
  );
}

beforeAll(async () => {
  ({ server, port, home, config } = await startLocalServer({
    name: "webservice",
    env: { SLIPWAY_HEALTH_TIMEOUT_S: "30" },
  }));
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await removeToolContainers(TOOL);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("webservice output and lifecycle", () => {
  let firstRelease: string;
  let secondRelease: string;
  let repo: Awaited<ReturnType<typeof gitRepo>>;
  let url: string;

  it("keeps a line per request, readable with `slipway webservice logs`", async () => {
    const tool = await api<{ token: string; git_url: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: TOOL }),
    });
    url = tool.git_url.replace("http://", `http://user:${tool.token}@`);
    repo = await gitRepo(loggingApp("v1"));
    firstRelease = await push(repo, url);
    expect(await viaProxy(port, TOOL, "/first")).toEqual({ status: 200, body: "v1" });
    expect(await viaProxy(port, TOOL, "/second")).toEqual({ status: 200, body: "v1" });
    const out = await logsUntil(/v1 served \/second/);
    expect(out).toMatch(/v1 listening[\s\S]*v1 served \/first[\s\S]*v1 served \/second/);

    const status = await cli(["webservice", "status", "--tool", TOOL, "--json"]);
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout) as Status;
    expect(s).toMatchObject({ state: "running", release_id: firstRelease });
    expect(s.image_digest).toMatch(/^sha256:/);
    expect(s.address).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("keeps the first release's lines after a second push replaced its container", async () => {
    await repo.commit(loggingApp("v2"), "v2");
    secondRelease = await push(repo, url);
    expect(secondRelease).not.toBe(firstRelease);
    await waitFor(
      "v2 served",
      async () => ((await viaProxy(port, TOOL, "/third")).body === "v2" ? true : undefined),
      20_000,
    );
    // The first release's container is gone …
    await waitFor(
      "old container removed",
      async () => {
        const ps = await podman(["ps", "-a", "-q", "--filter", `label=io.slipway.release=${firstRelease}`], {
          repoRoot: config.repoRoot,
        });
        return ps.stdout.trim() === "" ? true : undefined;
      },
      20_000,
    );
    // … its output is not.
    const old = await cli(["webservice", "logs", "--tool", TOOL, "--release", firstRelease]);
    expect(old.code, old.stderr).toBe(0);
    expect(old.stdout).toContain("v1 served /first");
    expect(old.stdout).not.toContain("v2");
    const live = await logsUntil(/v2 served \/third/);
    expect(live).not.toContain("v1 served");
    const s = await api<Status>(`/api/v1/tools/${TOOL}/webservice`);
    expect(s.logged_releases).toEqual(expect.arrayContaining([firstRelease, secondRelease]));
  });

  it("follows new lines with `logs -f` until the client goes", async () => {
    const res = await fetch(`${server.url}/api/v1/tools/${TOOL}/webservice/logs?follow=true&tail=1`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await viaProxy(port, TOOL, "/followed");
    let text = "";
    await waitFor(
      "followed line",
      async () => {
        const { value } = (await reader.read()) as { value?: Uint8Array };
        text += new TextDecoder().decode(value);
        return text.includes("v2 served /followed") ? true : undefined;
      },
      20_000,
      0,
    );
    await reader.cancel();
  });

  it("keeps following the running process across a server restart, without repeating lines", async () => {
    await viaProxy(port, TOOL, "/before-server-restart");
    await logsUntil(/v2 served \/before-server-restart/);
    await server.close();
    server = await startServer(config, stderrLogger(config));
    await server.ready;
    expect(await viaProxy(port, TOOL, "/after-server-restart")).toEqual({ status: 200, body: "v2" });
    const out = await logsUntil(/v2 served \/after-server-restart/);
    expect(out.split("\n").filter((l) => l === "v2 served /before-server-restart")).toHaveLength(1);
  });

  it("restarts as a new release that serves", async () => {
    const r = await cli(["webservice", "restart", "--tool", TOOL, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const { release_id } = JSON.parse(r.stdout) as { release_id: string };
    expect(release_id).not.toBe(secondRelease);
    const release = await settled(release_id);
    expect(release.status, JSON.stringify(release)).toBe("live");
    const shown = await api<{ trigger: { kind: string } }>(`/api/v1/tools/${TOOL}/releases/${release_id}`);
    expect(shown.trigger.kind).toBe("restart");
    expect(await viaProxy(port, TOOL, "/after-restart")).toEqual({ status: 200, body: "v2" });
    await logsUntil(/v2 served \/after-restart/);
  });

  it("stops: the proxy answers 503 saying so, status says stopped; start serves again", async () => {
    const stopped = await cli(["webservice", "stop", "--tool", TOOL]);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain(`${TOOL}: stopped`);
    const answer = await viaProxy(port, TOOL);
    expect(answer.status).toBe(503);
    expect(answer.body).toContain("no running webservice");
    const s = await api<Status>(`/api/v1/tools/${TOOL}/webservice`);
    expect(s.state).toBe("stopped");
    // Its output is still there.
    const kept = await cli(["webservice", "logs", "--tool", TOOL]);
    expect(kept.stdout).toContain("v2 served /after-restart");

    const started = await cli(["webservice", "start", "--tool", TOOL, "--json"]);
    expect(started.code, started.stderr).toBe(0);
    const { release_id } = JSON.parse(started.stdout) as { release_id: string };
    expect((await settled(release_id)).status).toBe("live");
    expect(await viaProxy(port, TOOL, "/after-start")).toEqual({ status: 200, body: "v2" });
    expect((await api<Status>(`/api/v1/tools/${TOOL}/webservice`)).state).toBe("running");
  });

  it("answers bad input with a clear error", async () => {
    const bad = await client.request<{ error: { message: string } }>(
      `/api/v1/tools/${TOOL}/webservice/logs?tail=0`,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/tail/);
    const unknown = await cli(["webservice", "logs", "--tool", TOOL, "--release", "nosuchrelease"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no release nosuchrelease/);
  });
});
