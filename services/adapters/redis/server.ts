import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { createLogger, type Logger } from "../../platform/logger.js";
import { freePort, waitForPort } from "../../platform/net.js";
import { SupervisedProcess } from "../../platform/supervisor.js";

/**
 * A redis-server child process owned by Slipway (the local profile when no REDIS_URL is given),
 * supervised: restarted on the same port when it dies, and a copy left by a killed server on the same
 * directory stopped before it starts (pid file `<dir>/redis.pid`).
 */
export class RedisServer {
  private constructor(
    readonly url: string,
    private readonly process: SupervisedProcess,
  ) {}

  /**
   * Starts redis-server with its data under `dir`: append-only persistence so tools, builds and releases
   * survive a restart, loopback only, no password because nothing but this machine can reach it.
   */
  static async start(
    dir: string,
    port: number,
    logger: Logger = createLogger({ level: "silent" }),
  ): Promise<RedisServer> {
    await mkdir(dir, { recursive: true });
    const chosen = port === 0 ? await freePort() : port;
    const confPath = path.join(dir, "redis.conf");
    const logPath = path.join(dir, "redis.log");
    const conf = [
      `bind 127.0.0.1`,
      `port ${chosen}`,
      `dir ${dir}`,
      `appendonly yes`,
      // Redis write()s the AOF before it replies, so an accepted webhook survives a killed
      // redis-server or server (test/faults); only a kernel crash or power cut can lose the last second.
      // `always` would close that second at a cost measured here of 4x fewer writes per second (SET, 20
      // clients: 11.2k/s -> 2.7k/s, p50 0.4 -> 6.3 ms), paid by every build log line and queue update.
      `appendfsync everysec`,
      `save 60 1`,
      `daemonize no`,
      `logfile ${logPath}`,
      // Keeps the command line as spawned, config path included: it is how the next start tells this
      // home's orphaned redis-server from any other (platform/pid-file.ts).
      `set-proc-title no`,
      // BullMQ needs keys never evicted.
      `maxmemory-policy noeviction`,
    ].join("\n");
    await writeFile(confPath, conf + "\n", { mode: 0o600 });
    const supervised = await SupervisedProcess.start(
      {
        name: "redis-server",
        command: "redis-server",
        args: [confPath],
        marker: confPath,
        pidFile: path.join(dir, "redis.pid"),
        port: chosen,
        logHint: logPath,
        ready: () => waitForPort(chosen, 15_000),
      },
      logger,
    );
    return new RedisServer(`redis://127.0.0.1:${chosen}`, supervised);
  }

  /** The running redis-server's pid (undefined while it is being restarted). */
  get pid(): number | undefined {
    return this.process.pid;
  }

  close(): Promise<void> {
    return this.process.close();
  }
}
