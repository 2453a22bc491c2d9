import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  cmdlineOf,
  killLeftovers,
  serverPorts,
  startServerProcess,
  stopServerProcess,
  type ServerPorts,
  type ServerProcess,
} from "../helpers/server-process.js";

/**
 * Issue 11, item 4: `kill -9` of the server leaves its Redis and registry running; the next start must
 * come up by itself, stopping the orphans it owns and never another server's children.
 */
const homes: { home: string; ports: ServerPorts }[] = [];
const running: ServerProcess[] = [];

async function newHome(name: string): Promise<{ home: string; ports: ServerPorts }> {
  const h = {
    home: await mkdtemp(path.join(os.tmpdir(), `slipway-fs-${name}-`)),
    ports: await serverPorts(),
  };
  homes.push(h);
  return h;
}

async function start(h: { home: string; ports: ServerPorts }): Promise<ServerProcess> {
  const s = await startServerProcess(h.home, h.ports);
  running.push(s);
  return s;
}

/** The child's pid (line one); undefined when there is no file (as on a server that writes none). */
async function pidIn(file: string): Promise<number | undefined> {
  try {
    return Number((await readFile(file, "utf8")).split("\n")[0]);
  } catch {
    return undefined;
  }
}

async function api<T>(s: ServerProcess, home: string, route: string, init: RequestInit = {}): Promise<T> {
  const token = (await readFile(path.join(home, "admin-token"), "utf8")).trim();
  const res = await fetch(`${s.url}${route}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
  });
  const body = (await res.json()) as T;
  if (!res.ok) throw new Error(`${route}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

afterAll(async () => {
  // Whatever a stop does, what a test started is killed and removed after it.
  await Promise.allSettled(running.map((s) => stopServerProcess(s)));
  for (const h of homes) {
    await killLeftovers(h.home, [h.ports.redis, h.ports.registry]);
    await rm(h.home, { recursive: true, force: true });
  }
}, 120_000);

describe("the terminal that ran `npm start` closes", () => {
  it("stops the server as SIGTERM does: its Redis and registry go with it", async () => {
    const h = await newHome("hangup");
    const s = await start(h);
    const redisPid = (await pidIn(path.join(h.home, "redis", "redis.pid")))!;
    const registryPid = (await pidIn(path.join(h.home, "registry", "registry.pid")))!;

    // What a closed ssh session or terminal window sends to the process it ran.
    s.child.kill("SIGHUP");
    await s.exited;
    expect(s.output()).toMatch(/"msg":"shutting down"/);
    expect(await cmdlineOf(redisPid)).toBeUndefined();
    expect(await cmdlineOf(registryPid)).toBeUndefined();
    await expect(readFile(path.join(h.home, "redis", "redis.pid"))).rejects.toThrow(/ENOENT/);
  }, 300_000);
});

describe("kill -9 of the server", () => {
  it("starts again on the same home and ports, with the data it had, and no orphan left", async () => {
    const h = await newHome("crash");
    const first = await start(h);
    await api(first, h.home, "/api/v1/tools", { method: "POST", body: JSON.stringify({ name: "survivor" }) });
    const redisPid = await pidIn(path.join(h.home, "redis", "redis.pid"));
    const registryPid = await pidIn(path.join(h.home, "registry", "registry.pid"));

    first.child.kill("SIGKILL");
    await first.exited;
    const second = await start(h);
    const tools = await api<{ name: string }[]>(second, h.home, "/api/v1/tools");
    expect(tools.map((t) => t.name)).toContain("survivor");
    // The orphans were stopped, not left beside new children.
    expect(redisPid && (await cmdlineOf(redisPid))).toBeUndefined();
    expect(registryPid && (await cmdlineOf(registryPid))).toBeUndefined();
    expect(await pidIn(path.join(h.home, "redis", "redis.pid"))).not.toBe(redisPid);
    expect(second.output()).toMatch(
      /"child":"redis-server".*"msg":"stopped an orphan left by an earlier run"/,
    );

    await stopServerProcess(second);
    // A clean stop leaves nothing running and no pid file to act on.
    await expect(readFile(path.join(h.home, "redis", "redis.pid"))).rejects.toThrow(/ENOENT/);
  }, 300_000);

  it("never stops another server's Redis or registry, whatever a pid file says", async () => {
    const other = await newHome("other");
    const otherServer = await start(other);
    const otherRedis = (await pidIn(path.join(other.home, "redis", "redis.pid")))!;
    const otherRegistry = (await pidIn(path.join(other.home, "registry", "registry.pid")))!;

    // A home whose pid files name the other server's children: a pid reused after a reboot, or a home
    // copied from another machine. Checked against /proc, they are not this home's processes.
    const mine = await newHome("forged");
    await mkdir(path.join(mine.home, "redis"), { recursive: true });
    await mkdir(path.join(mine.home, "registry"), { recursive: true });
    await writeFile(path.join(mine.home, "redis", "redis.pid"), `${otherRedis}\n`);
    await writeFile(path.join(mine.home, "registry", "registry.pid"), `${otherRegistry}\n`);

    const mineServer = await start(mine);
    await api(mineServer, mine.home, "/api/v1/tools");
    expect(await cmdlineOf(otherRedis)).toBeDefined();
    expect(await cmdlineOf(otherRegistry)).toBeDefined();
    expect(await pidIn(path.join(mine.home, "redis", "redis.pid"))).not.toBe(otherRedis);
    // A second `npm start` on a home in use is refused with the reason, and takes nothing from the first.
    await expect(startServerProcess(other.home, other.ports)).rejects.toThrow(
      new RegExp(`another Slipway server \\(pid ${otherServer.child.pid}\\) is running on ${other.home}`),
    );
    expect(await pidIn(path.join(other.home, "redis", "redis.pid"))).toBe(otherRedis);
    expect(await pidIn(path.join(other.home, "registry", "registry.pid"))).toBe(otherRegistry);
    // The other server still serves from its own Redis.
    await api(otherServer, other.home, "/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: "still-mine" }),
    });
  }, 300_000);
});
