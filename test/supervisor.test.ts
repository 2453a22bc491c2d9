import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { memoryLogger } from "../services/platform/logger.js";
import { freePort, isListening, waitForPort } from "../services/platform/net.js";
import { stopOrphan } from "../services/platform/pid-file.js";
import { SupervisedProcess, type SupervisedSpec } from "../services/platform/supervisor.js";

/**
 * The supervisor and the pid files on real processes: a tiny Node TCP server stands in for redis-server,
 * its "config path" (the marker) an argument that names this test's directory. In the integration suite,
 * not beside the code: it waits through real restart backoff (half a minute of the unit suite otherwise).
 */
const SERVE = "require('net').createServer().listen(Number(process.argv[1]), '127.0.0.1')";

let dir: string;
const spawned: ChildProcess[] = [];
const supervised: SupervisedProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "slipway-supervisor-"));
});
afterEach(async () => {
  for (const s of supervised.splice(0)) await s.close();
  for (const c of spawned.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

async function spec(overrides: Partial<SupervisedSpec> = {}): Promise<SupervisedSpec> {
  const port = overrides.port ?? (await freePort());
  const marker = path.join(dir, "fake.conf");
  return {
    name: "fake-server",
    command: process.execPath,
    args: ["-e", SERVE, String(port), marker],
    marker,
    pidFile: path.join(dir, "fake.pid"),
    port,
    logHint: "the test",
    ready: () => waitForPort(port, 10_000),
    backoffMs: 50,
    ...overrides,
  };
}

async function startSupervised(s: SupervisedSpec, logger = memoryLogger()) {
  const p = await SupervisedProcess.start(s, logger);
  supervised.push(p);
  return p;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A stand-in for a child a killed server left behind: started here, named by a pid file. */
async function leftover(s: SupervisedSpec, serverPid: number): Promise<ChildProcess> {
  const child = spawn(s.command, s.args, { stdio: "ignore" });
  spawned.push(child);
  await waitForPort(s.port, 10_000);
  await writeFile(s.pidFile, `${child.pid}\n${serverPid}\n`);
  return child;
}

describe("SupervisedProcess", () => {
  it("restarts a child killed with SIGKILL on the same port, logging the death and the restart", async () => {
    const logger = memoryLogger();
    const s = await spec();
    const p = await startSupervised(s, logger);
    const first = p.pid!;
    expect((await readFile(s.pidFile, "utf8")).split("\n")[0]).toBe(String(first));

    process.kill(first, "SIGKILL");
    // Counted once the new child serves.
    await until("the restart", () => (p.restartCount === 1 ? true : undefined));
    const second = p.pid!;
    expect(second).not.toBe(first);
    expect(await isListening(s.port)).toBe(true);
    expect((await readFile(s.pidFile, "utf8")).split("\n")[0]).toBe(String(second));
    const msgs = logger.entries.map((e) => e.msg);
    expect(msgs).toContain("child process died; restarting it");
    expect(msgs).toContain("child process restarted");
    expect(logger.entries.find((e) => e.msg === "child process died; restarting it")?.fields).toMatchObject({
      child: "fake-server",
      signal: "SIGKILL",
      restartInMs: 50,
    });
  });

  it("backs off while a restart keeps failing, and serves again once it can", async () => {
    const logger = memoryLogger();
    // Long enough for the squatter below to bind before the first restart.
    const s = await spec({ backoffMs: 300 });
    const p = await startSupervised(s, logger);
    const first = p.pid!;
    // Someone else takes the port while the child is down: restarts fail, each after a longer delay.
    process.kill(first, "SIGKILL");
    await until("the port to be free", async () => ((await isListening(s.port)) ? undefined : true));
    const squatter = net.createServer().listen(s.port, "127.0.0.1");
    // Each attempt first gives the port 5 s to free up.
    await until(
      "two failed restarts",
      () =>
        logger.entries.filter((e) => e.msg === "child process restart failed; trying again").length >= 2
          ? true
          : undefined,
      30_000,
    );
    const failed = logger.entries.filter((e) => e.msg === "child process restart failed; trying again");
    expect(failed[0]?.fields).toMatchObject({ restartInMs: 600 });
    expect(failed[1]?.fields).toMatchObject({ restartInMs: 1200 });
    expect(String(failed[0]?.fields && (failed[0].fields as { err: Error }).err.message)).toMatch(
      /port \d+ on 127\.0\.0\.1 is taken by a process that is not this home's fake-server/,
    );
    await new Promise((r) => squatter.close(r));
    await until("the child back", () => (p.pid && p.pid !== first ? p.pid : undefined), 30_000);
  }, 60_000);

  it("stops restarting once closed, and leaves no pid file", async () => {
    const s = await spec({ backoffMs: 300 });
    const p = await startSupervised(s);
    const first = p.pid!;
    process.kill(first, "SIGKILL");
    await p.close();
    await sleep(600);
    expect(p.pid).toBeUndefined();
    expect(await isListening(s.port)).toBe(false);
    await expect(readFile(s.pidFile)).rejects.toThrow(/ENOENT/);
  });

  it("fails its first start with the child's exit and where its log is", async () => {
    const s = await spec({ args: ["-e", "process.exit(3)"], logHint: "/var/log/fake.log" });
    await expect(SupervisedProcess.start(s, memoryLogger())).rejects.toThrow(
      "fake-server exited with 3; see /var/log/fake.log",
    );
  });
});

describe("stopOrphan", () => {
  it("stops this home's child left by a server that is gone, then starts a new one on its port", async () => {
    const logger = memoryLogger();
    const s = await spec();
    const orphan = await leftover(s, 2 ** 22 + 1);
    const p = await startSupervised(s, logger);
    await until("the orphan gone", () =>
      orphan.exitCode !== null || orphan.signalCode !== null ? true : undefined,
    );
    expect(p.pid).not.toBe(orphan.pid);
    expect(logger.entries.map((e) => e.msg)).toContain("stopped an orphan left by an earlier run");
  });

  it("leaves a process alone whose command line does not carry this home's marker", async () => {
    const s = await spec();
    const other = await leftover({ ...s, args: ["-e", SERVE, String(s.port), "/elsewhere/fake.conf"] }, 1);
    await stopOrphan(s.pidFile, s, memoryLogger());
    expect(alive(other.pid!)).toBe(true);
    // The stale file is gone; the port stays the other process's, which the start then reports.
    await expect(readFile(s.pidFile)).rejects.toThrow(/ENOENT/);
    await expect(SupervisedProcess.start(s, memoryLogger())).rejects.toThrow(
      /is taken by a process that is not/,
    );
    expect(alive(other.pid!)).toBe(true);
  });

  it("refuses to start beside a live server on the same home", async () => {
    const s = await spec();
    // The pid file names this test process as the server, and it is the child's parent: a live server.
    const child = await leftover(s, process.pid);
    await expect(stopOrphan(s.pidFile, s, memoryLogger())).rejects.toThrow(
      `another Slipway server (pid ${process.pid}) is running`,
    );
    expect(alive(child.pid!)).toBe(true);
  });
});
