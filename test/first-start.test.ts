import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { clearRootfs } from "../services/adapters/stack/rootfs.js";
import { run } from "../services/platform/process.js";
import { git, gitRepo, viaProxy, waitFor } from "./helpers/apps.js";
import { buildIdFrom } from "./helpers/local-server.js";
import { cmdlineOf, serverPorts, type ServerPorts } from "./helpers/server-process.js";

// Issue 12, item 9: the first start on a machine builds the stack images for minutes. Started at a
// terminal (a pseudo-TTY from `script`) with an empty stack directory, the server must show which step
// it is on in readable lines, a push made meanwhile must say in its build log what it waits for, and
// the proxy must say which build the tool waits on. This runs a real debootstrap (a few minutes) and
// stops the server once both images are installing their packages.

const repoRoot = path.resolve(import.meta.dirname, "..");
const TOOL = "firststart";

let home: string | undefined;
let stackHome: string | undefined;
let script: ChildProcess | undefined;
let output = "";

afterAll(async () => {
  const serverPid = await serverPidUnder(script?.pid);
  if (serverPid) {
    process.kill(serverPid, "SIGTERM");
    // The server stops its Redis and registry on the way out; the terminal is closed only after, or
    // the hang-up would cut that short.
    await waitFor(
      "the server to stop",
      async () => ((await cmdlineOf(serverPid)) ? undefined : true),
      30_000,
      200,
    ).catch(() => process.kill(serverPid, "SIGKILL"));
  }
  script?.kill("SIGTERM");
  // The stack build's debootstraps are the server's children; they are told to stop and waited for
  // before the tree is removed. debootstrap's exit trap does not always unmount the proc it mounted in
  // the tree (CI once failed here with EBUSY), so the tree is cleared as the next start would clear it.
  if (stackHome) await stopProcessesUnder(stackHome);
  if (stackHome) await clearRootfs(stackHome);
  if (home) await rm(home, { recursive: true, force: true });
}, 120_000);

describe("the first start at a terminal", () => {
  it("shows the stack's steps as readable lines, and a waiting push says what it waits for", async () => {
    home = await mkdtemp(path.join(os.tmpdir(), "slipway-first-"));
    // An empty stack directory: this start has to build the stack images itself.
    stackHome = await mkdtemp(path.join("/var/tmp", "slipway-first-stack-"));
    const ports: ServerPorts = await serverPorts();
    const command = `exec ${process.execPath} ${path.join(repoRoot, "dist/services/main.js")} server`;
    script = spawn("script", ["-qfec", command, "/dev/null"], {
      env: {
        ...process.env,
        SLIPWAY_HOME: home,
        SLIPWAY_STACK_HOME: stackHome,
        SLIPWAY_PORT: String(ports.api),
        SLIPWAY_REDIS_PORT: String(ports.redis),
        SLIPWAY_REGISTRY_PORT: String(ports.registry),
        SLIPWAY_LOG_LEVEL: "info",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    script.stdout?.on("data", (c: Buffer) => (output += c.toString("utf8")));
    script.stderr?.on("data", (c: Buffer) => (output += c.toString("utf8")));
    const api = `http://127.0.0.1:${ports.api}`;
    await waitFor(
      "the server to listen",
      () => Promise.resolve(/INFO +slipway is listening/.test(output) || undefined),
      120_000,
    );
    const admin = (await readFile(path.join(home, "admin-token"), "utf8")).trim();
    const call = async <T>(p: string, init: RequestInit = {}): Promise<T> => {
      const res = await fetch(`${api}${p}`, {
        ...init,
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      });
      if (!res.ok) throw new Error(`${p}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    };
    const proxied = async () => {
      const res = await viaProxy(ports.api, TOOL);
      return {
        status: res.status,
        message: (JSON.parse(res.body) as { error: { message: string } }).error.message,
      };
    };

    const tool = await call<{ token: string; git_url: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: TOOL }),
    });
    expect(await proxied()).toEqual({
      status: 503,
      message: `${TOOL} has no release yet: no build yet: push to ${tool.git_url}`,
    });

    const repo = await gitRepo({ "index.html": "<h1>hello</h1>\n", "project.toml": "" });
    const pushed = await git(repo.dir, [
      "push",
      tool.git_url.replace("http://", `http://user:${tool.token}@`),
      "main",
    ]);
    const buildId = buildIdFrom(pushed);
    expect(await proxied()).toEqual({
      status: 503,
      message: `${TOOL} has no release yet: build ${buildId} is pending (phase queued)`,
    });

    // Both images reach the package installation step, one readable line per step.
    await waitFor(
      "both stack images installing packages",
      () =>
        Promise.resolve(
          /build image, step 5 of 7: installing packages/.test(output) &&
            /run image, step 5 of 7: installing packages/.test(output)
            ? true
            : undefined,
        ),
      900_000,
      1000,
    );
    const lines = output.split(/\r?\n/).filter((l) => l.trim() !== "");
    for (const image of ["build", "run"]) {
      expect(lines).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^\\d\\d:\\d\\d:\\d\\d INFO +stack progress: stack bookworm: ${image} image, step 1 of 7: downloading package lists \\(0%\\)$`,
          ),
        ),
      );
      expect(lines).toContainEqual(
        expect.stringMatching(new RegExp(`${image} image, step 3 of 7: downloading packages \\(29%\\)$`)),
      );
    }
    expect(lines.filter((l) => l.trimStart().startsWith("{"))).toEqual([]);

    const log = await call<{ status: string; lines: string[] }>(`/api/v1/builds/${buildId}/logs`);
    expect(log.status).toBe("pending");
    expect(log.lines).toContainEqual(
      expect.stringMatching(
        /^waiting for the stack images to be built \(step [1-5] of 7\) — first start only$/,
      ),
    );
  }, 1_000_000);
});

/** The server `script` started: its direct child. */
async function serverPidUnder(scriptPid: number | undefined): Promise<number | undefined> {
  if (!scriptPid) return undefined;
  const r = await run("ps", ["-o", "pid=", "--ppid", String(scriptPid)], { allowFailure: true });
  const pid = Number(r.stdout.trim().split(/\s+/)[0]);
  return pid > 0 ? pid : undefined;
}

/** SIGTERM to every process whose command line names `dir`, then waits until none is left. */
async function stopProcessesUnder(dir: string): Promise<void> {
  const find = async () => {
    const pids: number[] = [];
    for (const entry of await readdir("/proc")) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid === process.pid) continue;
      if ((await cmdlineOf(pid))?.some((a) => a.includes(dir))) pids.push(pid);
    }
    return pids;
  };
  for (const pid of await find()) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // Gone between the listing and the signal.
    }
  }
  await waitFor(
    "the stack build to stop",
    async () => ((await find()).length === 0 ? true : undefined),
    60_000,
    500,
  );
}
