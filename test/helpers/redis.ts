import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { RedisServer } from "../../services/adapters/redis/server.js";
import { freePort, waitForPort } from "../../services/platform/net.js";

/** A real redis-server on a random port in a temp dir, removed by `stop()`. */
export async function startRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-redis-"));
  const server = await RedisServer.start(dir, 0);
  return {
    url: server.url,
    stop: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface KillableRedis {
  readonly url: string;
  /** kill -9 of redis-server: no shutdown save, clients see their connections reset. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port with the same data dir (it reloads the AOF); no-op while it runs. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A redis-server configured exactly as Slipway configures its own (the redis.conf RedisServer writes:
 * AOF, everysec), run by the test itself so that it can kill -9 it and start it again on the same port
 * and data dir, with nothing else restarting it behind the test's back.
 */
export async function startKillableRedis(): Promise<KillableRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-redis-"));
  const port = await freePort();
  const writer = await RedisServer.start(dir, port);
  await writer.close();
  let child: ChildProcess | undefined;
  const start = async () => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const c = spawn("redis-server", [path.join(dir, "redis.conf")], { stdio: "ignore" });
    child = c;
    await waitForPort(port, 15_000);
    if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode}; see ${dir}/redis.log`);
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill("SIGKILL");
    await exited;
  };
  await start();
  return {
    url: writer.url,
    kill,
    restart: start,
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
