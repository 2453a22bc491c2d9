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
 * `run.replicas` and `run.cpu` on the local profile, through a real server: several web containers per
 * release behind the front proxy, rolled over without a failed request, and podman's CPU limit on web
 * and job containers. Real Redis, registry, podman and git; the CLI from dist/ (`npm run build` first).
 */
const TOOL = "rep-web";

let server: RunningServer;
let port: number;
let home: string;
let config: Config;
const client = clientOf(() => server);
const { api, cli } = client;

/**
 * A stdlib Python webservice answering `<version> <hostname>` (the hostname is the container's id, so
 * two replicas answer differently); /health fails when `healthy` is false. A worker that only sleeps.
 */
function app(version: string, healthy = true): Record<string, string> {
  return {
    "app.py": `import http.server, os, socket

NAME = socket.gethostname()

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 500 if self.path == "/health" and not ${healthy ? "True" : "False"} else 200
        body = ("${version} " + NAME).encode()
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

print("${version} listening on " + NAME, flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
`,
    "slipway.yaml": `config_version: v1beta1
components:
  web:
    run:
      command: web
      port: 8000
      replicas: 2
      cpu: 250m
      health_check_http: /health
  worker:
    run:
      command: sleep 3600
      cpu: "0.3"
`,
  };
}

interface Status {
  state: string;
  release_id: string | null;
  replicas_wanted: number | null;
  replicas: { replica: number; address: string }[];
}

async function settled(releaseId: string) {
  return waitFor(
    `release ${releaseId}`,
    async () => {
      const r = await api<{ id: string; status: string; reason?: string; last_probe?: string }>(
        `/api/v1/tools/${TOOL}/releases/${releaseId}`,
      );
      return r.status !== "deploying" ? r : undefined;
    },
    180_000,
  );
}

/** Pushes and returns the release; the build ends `failure` (phase deploy) when the release failed. */
async function push(repo: Awaited<ReturnType<typeof gitRepo>>, url: string, buildStatus = "success") {
  const out = await git(repo.dir, ["push", "-f", url, "main"]);
  const build = await client.buildDone<{ status: string; release_id: string | null }>(buildIdFrom(out));
  expect(build.status, JSON.stringify(build)).toBe(buildStatus);
  return settled(build.release_id!);
}

/** The containers of this tool with the given extra label, as podman inspect sees them. */
async function containers(label: string) {
  const ps = await podman(
    ["ps", "-q", "--filter", `label=io.slipway.tool=${TOOL}`, "--filter", `label=${label}`],
    {
      repoRoot: config.repoRoot,
    },
  );
  const ids = ps.stdout.split("\n").filter(Boolean);
  if (ids.length === 0) return [];
  const inspected = await podman(["inspect", ...ids], { repoRoot: config.repoRoot });
  return JSON.parse(inspected.stdout) as {
    Name: string;
    Config: { Hostname: string; Labels: Record<string, string> };
    HostConfig: { NanoCpus: number; CpuQuota: number; CpuPeriod: number };
  }[];
}

/** The distinct hostnames `n` requests through the proxy were answered from, and their versions. */
async function answers(n: number): Promise<{ versions: Set<string>; hosts: Set<string> }> {
  const versions = new Set<string>();
  const hosts = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await viaProxy(port, TOOL, `/n${i}`);
    expect(r.status, r.body).toBe(200);
    const [version, host] = r.body.split(" ");
    versions.add(version!);
    hosts.add(host!);
  }
  return { versions, hosts };
}

beforeAll(async () => {
  ({ server, port, home, config } = await startLocalServer({
    name: "replicas",
    env: { SLIPWAY_HEALTH_TIMEOUT_S: "20" },
  }));
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await removeToolContainers(TOOL);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("run.replicas and run.cpu on the local profile", () => {
  let repo: Awaited<ReturnType<typeof gitRepo>>;
  let url: string;
  let v1: string;
  let v2: string;

  it("serves a 2-replica webservice from 2 containers, each limited to run.cpu", async () => {
    const tool = await api<{ token: string; git_url: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: TOOL }),
    });
    url = tool.git_url.replace("http://", `http://user:${tool.token}@`);
    repo = await gitRepo(app("v1"));
    const release = await push(repo, url);
    expect(release.status, JSON.stringify(release)).toBe("live");
    v1 = release.id;

    const web = await containers(`io.slipway.release=${v1}`);
    expect(web.map((c) => c.Name.replace(/^.*-/, "")).sort()).toEqual(["0", "1"]);
    expect(web.map((c) => c.HostConfig.NanoCpus)).toEqual([250_000_000, 250_000_000]);

    const seen = await answers(6);
    expect(seen.versions).toEqual(new Set(["v1"]));
    expect(seen.hosts).toEqual(new Set(web.map((c) => c.Config.Hostname)));

    const s = await api<Status>(`/api/v1/tools/${TOOL}/webservice`);
    expect(s).toMatchObject({ state: "running", release_id: v1, replicas_wanted: 2 });
    expect(s.replicas.map((r) => r.replica)).toEqual([0, 1]);
    const text = await cli(["webservice", "status", "--tool", TOOL]);
    expect(text.stdout).toMatch(/replicas 2 of 2 up/);

    // Both replicas' output reaches `webservice logs`.
    await waitFor(
      "both replicas' start lines",
      async () => {
        const r = await cli(["webservice", "logs", "--tool", TOOL]);
        return web.every((c) => r.stdout.includes(`v1 listening on ${c.Config.Hostname}`)) ? true : undefined;
      },
      20_000,
    );
  });

  it("limits the continuous job of the config to its run.cpu", async () => {
    const jobs = await waitFor(
      "worker job container",
      async () => {
        const found = await containers("io.slipway.role=job");
        return found.length > 0 ? found : undefined;
      },
      60_000,
    );
    expect(jobs[0]!.HostConfig.NanoCpus).toBe(300_000_000);
  });

  it("limits a job started with `jobs run --cpu` to that", async () => {
    const r = await cli([
      "jobs",
      "run",
      "rep-cpu",
      "--command",
      "sleep 600",
      "--continuous",
      "--cpu",
      "200m",
      "--tool",
      TOOL,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const job = await waitFor(
      "rep-cpu job container",
      async () => (await containers("io.slipway.job=rep-cpu"))[0],
      60_000,
    );
    expect(job.HostConfig.NanoCpus).toBe(200_000_000);
    const bad = await cli(["jobs", "run", "rep-bad", "--command", "true", "--cpu", "lots", "--tool", TOOL]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/"lots" is not a CPU quantity/);
    expect((await cli(["jobs", "delete", "rep-cpu", "--tool", TOOL])).code).toBe(0);
  });

  it("rolls both replicas over to a new push without a failed request", async () => {
    await repo.commit(app("v2"), "v2");
    let polling = true;
    const tally = { ok: 0, failed: [] as string[] };
    const poller = (async () => {
      while (polling) {
        try {
          const r = await viaProxy(port, TOOL, "/poll");
          if (r.status === 200) tally.ok++;
          else tally.failed.push(`${r.status} ${r.body}`);
        } catch (e) {
          tally.failed.push(String(e));
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const release = await push(repo, url);
    expect(release.status, JSON.stringify(release)).toBe("live");
    v2 = release.id;
    // Keep polling until the old release's containers are gone: its drain and stop are covered too.
    await waitFor(
      "v1 containers removed",
      async () => ((await containers(`io.slipway.release=${v1}`)).length === 0 ? true : undefined),
      30_000,
    );
    polling = false;
    await poller;
    expect(tally.failed).toEqual([]);
    expect(tally.ok).toBeGreaterThan(10);

    const seen = await answers(6);
    expect(seen.versions).toEqual(new Set(["v2"]));
    expect(seen.hosts.size).toBe(2);
  });

  it("keeps the old replicas serving when the new release fails its health check", async () => {
    await repo.commit(app("v3", false), "v3 unhealthy");
    const release = await push(repo, url, "failure");
    expect(release.status).toBe("failed");
    expect(release.reason).toMatch(/web process \(replica \d of 2\) did not pass its health check/);
    expect(release.last_probe).toMatch(/HTTP 500/);
    expect(await containers(`io.slipway.release=${release.id}`)).toEqual([]);
    const seen = await answers(6);
    expect(seen.versions).toEqual(new Set(["v2"]));
    expect(seen.hosts.size).toBe(2);
  });

  it("brings a removed replica back when the server restarts", async () => {
    const [gone] = await containers(`io.slipway.release=${v2}`);
    await server.close();
    await podman(["rm", "-f", "-t", "0", gone!.Name], { repoRoot: config.repoRoot });
    server = await startServer(config, stderrLogger(config));
    await server.ready;
    const s = await waitFor(
      "two replicas up again",
      async () => {
        const st = await api<Status>(`/api/v1/tools/${TOOL}/webservice`);
        return st.replicas.length === 2 ? st : undefined;
      },
      60_000,
    );
    expect(s.release_id).toBe(v2);
    const web = await containers(`io.slipway.release=${v2}`);
    expect(web.map((c) => c.Name.replace(/^.*-/, "")).sort()).toEqual(["0", "1"]);
    // The route follows once the replica passed its health check.
    const hosts = new Set(web.map((c) => c.Config.Hostname));
    await waitFor(
      "answers from both replicas",
      async () => ((await answers(4)).hosts.size === 2 ? true : undefined),
      30_000,
    );
    expect((await answers(6)).hosts).toEqual(hosts);
  });
});
