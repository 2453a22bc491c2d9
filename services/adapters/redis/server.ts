import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { TransientError } from "../../platform/errors.js";

/** A redis-server child process owned by Slipway (the local profile when no REDIS_URL is given). */
export class RedisServer {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
  ) {}

  /**
   * Starts redis-server with its data under `dir`: append-only persistence so tools, builds and releases
   * survive a restart, loopback only, no password because nothing but this machine can reach it.
   */
  static async start(dir: string, port: number): Promise<RedisServer> {
    await mkdir(dir, { recursive: true });
    const chosen = port === 0 ? await freePort() : port;
    const conf = [
      `bind 127.0.0.1`,
      `port ${chosen}`,
      `dir ${dir}`,
      `appendonly yes`,
      `appendfsync everysec`,
      `save 60 1`,
      `daemonize no`,
      `logfile ${path.join(dir, "redis.log")}`,
      // BullMQ needs keys never evicted.
      `maxmemory-policy noeviction`,
    ].join("\n");
    const confPath = path.join(dir, "redis.conf");
    await writeFile(confPath, conf + "\n", { mode: 0o600 });
    const child = spawn("redis-server", [confPath], { stdio: "ignore" });
    const failed = new Promise<never>((_, reject) => {
      child.once("error", (e) =>
        reject(new TransientError(`cannot start redis-server: ${e.message}`, { cause: e })),
      );
      child.once("exit", (code) =>
        reject(new TransientError(`redis-server exited with ${code}; see ${path.join(dir, "redis.log")}`)),
      );
    });
    const server = new RedisServer(`redis://127.0.0.1:${chosen}`, child);
    await Promise.race([waitForPort(chosen, 15_000), failed]);
    failed.catch(() => undefined);
    return server;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    await Promise.race([exited, sleep(10_000)]);
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs: number, host = "127.0.0.1"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new TransientError(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}
