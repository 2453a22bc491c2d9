import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { TransientError } from "../../platform/errors.js";
import { freePort, waitForPort } from "../../platform/net.js";

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
