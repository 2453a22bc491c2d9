import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podman } from "../../services/adapters/podman/podman.js";
import { freePort } from "../../services/platform/net.js";
import { run } from "../../services/platform/process.js";
import type { RunningServer } from "../../services/roles/server/server.js";
import { git, gitRepo, waitFor } from "../helpers/apps.js";
import { removeAtEnd } from "../helpers/leftovers.js";
import { buildIdFrom, clientOf, removeToolContainers } from "../helpers/local-server.js";
import { startRedis } from "../helpers/redis.js";
import { TEST_STACK_HOME, testBuildBackend } from "../helpers/stack.js";

/**
 * kill -9 of the server in the middle of a build, as a crash or an OOM kill would do it. The server
 * runs as a child process (`node dist/services/main.js server`) on one SLIPWAY_HOME and an outside
 * Redis (which lives on, as a separate Redis would); the restarted server must end the build it was
 * running, remove that build's sandbox container, and `build list` must tell the truth afterwards.
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");
const TOOLS = ["crash-rerun", "crash-cancel"];

let redis: Awaited<ReturnType<typeof startRedis>>;
let home: string;
let registryPort: number;
/** One API port for every start: the tools' git URLs (their builds' source) name it. */
let apiPort: number;
const started: string[] = [];
let proc: ChildProcess | undefined;
let current: RunningServer;

const client = clientOf(() => current);
const { api, request, cli } = client;

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  phase: string | null;
  commit: string;
}

/** A build that takes a while in its build phase (an inline buildpack that sleeps), then serves HTTP. */
function slowApp(seconds: number): Record<string, string> {
  return {
    "project.toml": `[_]
schema-version = "0.2"

[[io.buildpacks.group]]
id = "test/slow"
  [io.buildpacks.group.script]
  api = "0.10"
  shell = "/bin/bash"
  inline = """
set -euo pipefail
echo "slow buildpack: sleeping ${seconds} s"
sleep ${seconds}
cat > "$CNB_LAYERS_DIR/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["bash", "-c", "exec python3 -m http.server $PORT"]
default = true
EOF
echo "slow buildpack: done"
"""
`,
    "index.html": "hello\n",
  };
}

/** Starts `slipway server` as a child process and waits until it answers (and its builder is ready). */
async function startServerProcess(role: "all" | "api" = "all"): Promise<void> {
  const port = apiPort;
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, "dist/services/main.js"), "server", "--role", role],
    {
      env: {
        ...process.env,
        ...testBuildBackend(),
        SLIPWAY_HOME: home,
        SLIPWAY_STACK_HOME: TEST_STACK_HOME,
        SLIPWAY_PORT: String(port),
        SLIPWAY_REGISTRY_PORT: String(registryPort),
        REDIS_URL: redis.url,
        SLIPWAY_LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  proc = child;
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")));
  const readyLine = role === "api" ? "slipway is listening" : "builder ready";
  await waitFor(
    `the server (${role}) to start`,
    () => {
      if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}):\n${output}`);
      return Promise.resolve(output.includes(readyLine) ? true : undefined);
    },
    300_000,
    200,
  );
  const adminToken = (await readFile(path.join(home, "admin-token"), "utf8")).trim();
  current = {
    url: `http://127.0.0.1:${port}`,
    adminToken,
    adminTokenCreated: false,
    ready: Promise.resolve(),
    close: () => stopServerProcess("SIGTERM"),
  };
}

/** Ends the server; with SIGKILL also whatever it started under this home (its registry), as a
 * supervisor restarting it would find them: the restart needs their ports. Containers stay. */
async function stopServerProcess(signal: "SIGKILL" | "SIGTERM"): Promise<void> {
  const child = proc;
  proc = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  await exited;
  if (signal === "SIGKILL") await killLeftovers();
}

async function killLeftovers(): Promise<void> {
  const ps = await run("ps", ["-eo", "pid=,args="], {});
  for (const line of ps.stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m && m[2]!.includes(home) && Number(m[1]) !== process.pid) {
      try {
        process.kill(Number(m[1]), "SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
}

/**
 * The id of the build's sandbox container (the podman backend's, or with pipelines/ the build Task's,
 * where buildpacks run), once it runs; undefined before.
 */
async function sandboxOf(buildId: string): Promise<string | undefined> {
  const name = `name=^slipway-build-${buildId}(-build)?$`;
  const ps = await podman(["ps", "-a", "-q", "--no-trunc", "--filter", name], { repoRoot });
  return ps.stdout.trim().split("\n").filter(Boolean)[0];
}

async function containerExists(id: string): Promise<boolean> {
  const r = await podman(["container", "exists", id], { repoRoot, allowFailure: true });
  return r.code === 0;
}

async function createTool(name: string) {
  return api<{ name: string; token: string; git_url: string; redeploy_url: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name }),
  });
}

/** Pushes the app and waits until its buildpack sleeps in the sandbox; answers build and container. */
async function pushAndWaitForSandbox(tool: { git_url: string; token: string }, seconds: number) {
  const repo = await gitRepo(slowApp(seconds));
  const pushUrl = tool.git_url.replace("http://", `http://user:${tool.token}@`);
  const id = buildIdFrom(await git(repo.dir, ["push", pushUrl, "main"]));
  started.push(id);
  await waitFor(
    "the slow buildpack to run",
    async () => {
      const logs = await api<{ lines: string[] }>(`/api/v1/builds/${id}/logs`);
      return logs.lines.some((l) => l.includes("slow buildpack: sleeping")) ? true : undefined;
    },
    180_000,
    500,
  );
  const sandbox = await sandboxOf(id);
  expect(sandbox, "the build's sandbox container runs").toBeDefined();
  return { id, sandbox: sandbox! };
}

beforeAll(async () => {
  redis = await startRedis();
  home = await mkdtemp(path.join(os.tmpdir(), "slipway-crash-"));
  registryPort = await freePort();
  apiPort = await freePort();
  removeAtEnd(home, `127.0.0.1:${registryPort}`);
  await startServerProcess();
}, 600_000);

afterAll(async () => {
  await stopServerProcess("SIGKILL");
  for (const tool of TOOLS) await removeToolContainers(tool);
  // This file's builds' sandboxes, in case a test failed before they went.
  for (const id of started)
    for (const suffix of ["", "-fetch", "-build", "-export"])
      await podman(["rm", "-f", "-t", "0", `slipway-build-${id}${suffix}`], { repoRoot, allowFailure: true });
  await redis?.stop();
  if (home) await rm(home, { recursive: true, force: true });
}, 120_000);

describe("kill -9 of the server during a build", () => {
  it("builds it again after the restart, removes the dead run's sandbox and lists the truth", async () => {
    const tool = await createTool("crash-rerun");
    const { id, sandbox } = await pushAndWaitForSandbox(tool, 20);

    await stopServerProcess("SIGKILL");
    expect(await containerExists(sandbox), "kill -9 leaves the sandbox behind").toBe(true);
    const killed = Date.now();
    await startServerProcess();
    const restarted = Date.now();

    const done = await waitFor(
      `build ${id} to end after the restart`,
      async () => {
        const b = await api<BuildView>(`/api/v1/builds/${id}`);
        return ["success", "failure", "cancelled", "superseded"].includes(b.status) ? b : undefined;
      },
      300_000,
      1000,
    );
    expect(done.status, done.reason ?? "").toBe("success");
    // Figures for the record, not asserted: how long the orphan waited for the heartbeat to expire.
    const rerunAt = Date.parse((done as BuildView & { started_at: string }).started_at);
    console.info(
      `kill -9 → server ready ${((restarted - killed) / 1000).toFixed(1)} s; → re-run started ${((rerunAt - killed) / 1000).toFixed(1)} s; → success ${((Date.now() - killed) / 1000).toFixed(1)} s`,
    );
    const logs = await api<{ lines: string[] }>(`/api/v1/builds/${id}/logs`);
    expect(logs.lines.join("\n")).toMatch(/RESTARTING: the builder restarted during phase (detect|build)/);
    expect(await containerExists(sandbox), "the killed run's sandbox is removed").toBe(false);
    expect(await sandboxOf(id), "no sandbox is left once the build ended").toBeUndefined();

    // What a maintainer sees: `build list` has the build as it ended, nothing still "running".
    const listed = await cli(["build", "list", "--tool", tool.name, "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as BuildView[];
    expect(rows.find((b) => b.id === id)?.status).toBe("success");
    expect(rows.filter((b) => b.status === "running" || b.status === "pending")).toEqual([]);

    // The commit is answered by the finished build (built already), not by one that never ends.
    const again = await request<{ status: string; build_id: string }>(`/api/v1/tools/${tool.name}/builds`, {
      method: "POST",
      body: "{}",
    });
    expect(again.body).toMatchObject({ status: "duplicate", build_id: id });
  }, 900_000);

  it("build cancel removes the sandbox of a build whose builder was killed, and the commit builds again", async () => {
    const tool = await createTool("crash-cancel");
    const { id, sandbox } = await pushAndWaitForSandbox(tool, 600);

    await stopServerProcess("SIGKILL");
    // Only the API comes back: no builder recovers the build, `build cancel` alone must end it.
    await startServerProcess("api");
    expect(await containerExists(sandbox)).toBe(true);
    const cancelled = await cli(["build", "cancel", id, "--json"]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ status: "cancelled" });
    expect(await containerExists(sandbox), "cancel removed the sandbox container").toBe(false);

    const listed = await cli(["build", "list", "--tool", tool.name, "--json"]);
    expect((JSON.parse(listed.stdout) as BuildView[]).find((b) => b.id === id)?.status).toBe("cancelled");
    // The cancelled commit is free again: the redeploy hook queues it.
    const hook = await fetch(tool.redeploy_url, { method: "POST" });
    expect(hook.status).toBe(202);
    expect(await hook.json()).toMatchObject({ status: "queued" });
  }, 900_000);
});
