import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import bcrypt from "bcryptjs";
import { stringify } from "yaml";
import { z } from "zod";
import type { Config } from "../../platform/env.js";
import { createLogger, type Logger } from "../../platform/logger.js";
import { freePort } from "../../platform/net.js";
import { TransientError } from "../../platform/errors.js";
import { stopOrphan } from "../../platform/pid-file.js";
import { SupervisedProcess } from "../../platform/supervisor.js";

/** Options for {@link RegistryServer.start}. */
export interface RegistryServerOptions {
  /** Holds the config, the htpasswd file, the credentials and the blobs; created if missing. */
  readonly dir: string;
  /** 0 or "random" picks a free loopback port (tests). */
  readonly port: number | "random";
  /** Defaults to Debian's package path. */
  readonly binary?: string;
  readonly startTimeoutMs?: number;
  /**
   * Run `docker-registry garbage-collect` before serving: frees the blobs of manifests that image
   * retention deleted. Only here, because the registry must not take pushes while it runs.
   */
  readonly garbageCollect?: boolean;
  /** Where the supervisor logs deaths and restarts; silent when absent. */
  readonly logger?: Logger;
}

const credentialsSchema = z.object({
  username: z.string().min(1),
  password: z.string().min(16),
  secret: z.string(),
});
type Credentials = z.infer<typeof credentialsSchema>;

/**
 * A `docker-registry` (distribution v2) child process on loopback with htpasswd auth: the image store
 * of the local profile. Its one user's credentials are generated once and kept in `dir`, so a restart
 * of Slipway keeps both the images and the password the deployed releases were pulled with. Supervised:
 * restarted on the same port when it dies; a copy left by a killed server on the same directory is
 * stopped before it starts (pid file `<dir>/registry.pid`).
 */
export class RegistryServer {
  private constructor(
    /** `http://127.0.0.1:<port>` */
    readonly url: string,
    /** `127.0.0.1:<port>`, as it appears in image references. */
    readonly host: string,
    readonly username: string,
    readonly password: string,
    private readonly process: SupervisedProcess,
  ) {}

  /** The local profile's registry: `<home>/registry`, on the configured port. */
  static fromConfig(config: Pick<Config, "home" | "registryPort">, logger: Logger): Promise<RegistryServer> {
    return RegistryServer.start({
      dir: path.join(config.home, "registry"),
      port: config.registryPort,
      garbageCollect: true,
      logger,
    });
  }

  static async start(options: RegistryServerOptions): Promise<RegistryServer> {
    const dir = path.resolve(options.dir);
    await mkdir(path.join(dir, "data"), { recursive: true, mode: 0o700 });
    const port = options.port === 0 || options.port === "random" ? await freePort() : options.port;
    const creds = await loadOrCreateCredentials(dir);
    const htpasswd = path.join(dir, "htpasswd");
    // bcrypt cost 5: the registry checks the hash on every request, and at the default cost of 10 that is
    // tens of milliseconds per blob HEAD. The password is 32 random bytes, so the cost adds no safety.
    await writeFile(htpasswd, `${creds.username}:${bcrypt.hashSync(creds.password, 5)}\n`, { mode: 0o600 });
    const configPath = path.join(dir, "config.yml");
    await writeFile(configPath, registryConfig(dir, port, htpasswd, creds.secret), { mode: 0o600 });

    const logPath = path.join(dir, "registry.log");
    const binary = options.binary ?? "/usr/bin/docker-registry";
    const logger = options.logger ?? createLogger({ level: "silent" });
    const identity = { name: "docker-registry", command: binary, marker: configPath };
    const pidFile = path.join(dir, "registry.pid");
    // Before garbage collection: it must not run while an orphaned registry still takes pushes.
    await stopOrphan(pidFile, identity, logger.child({ child: identity.name }));
    if (options.garbageCollect) await garbageCollect(binary, configPath, logPath);
    const host = `127.0.0.1:${port}`;
    const url = `http://${host}`;
    const supervised = await SupervisedProcess.start(
      {
        ...identity,
        args: ["serve", configPath],
        pidFile,
        port,
        logPath,
        logHint: logPath,
        ready: () => waitForAuthChallenge(url, options.startTimeoutMs ?? 15_000),
      },
      logger,
    );
    return new RegistryServer(url, host, creds.username, creds.password, supervised);
  }

  /** The running docker-registry's pid (undefined while it is being restarted). */
  get pid(): number | undefined {
    return this.process.pid;
  }

  close(): Promise<void> {
    return this.process.close();
  }
}

function registryConfig(dir: string, port: number, htpasswd: string, secret: string): string {
  return stringify({
    version: 0.1,
    log: { level: "warn", formatter: "text", accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: path.join(dir, "data") },
      // Lets the operator (and garbage collection of superseded builds) remove manifests.
      delete: { enabled: true },
      // No blob-descriptor cache: it outlives a deleted repository (`tools delete`) and would answer
      // "present" for a layer the next push to a repository of that name no longer has. Loopback
      // file-system lookups cost less than a push refused for an unknown blob.
    },
    http: { addr: `127.0.0.1:${port}`, secret },
    auth: { htpasswd: { realm: "slipway-registry", path: htpasswd } },
    // No `health` section: its storage-driver checker is off by default and only adds log noise.
  });
}

/** Best effort: a failed collection only leaves unused blobs on disk; its output goes to the log. */
async function garbageCollect(binary: string, configPath: string, logPath: string): Promise<void> {
  const log = await open(logPath, "a", 0o600);
  try {
    const child = spawn(binary, ["garbage-collect", configPath], { stdio: ["ignore", log.fd, log.fd] });
    await new Promise<void>((resolve) => {
      child.once("error", () => resolve());
      child.once("exit", () => resolve());
    });
  } finally {
    await log.close();
  }
}

async function loadOrCreateCredentials(dir: string): Promise<Credentials> {
  const file = path.join(dir, "credentials.json");
  let text: string | undefined;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  if (text !== undefined) return credentialsSchema.parse(JSON.parse(text));
  const creds: Credentials = {
    username: "slipway",
    password: randomBytes(32).toString("base64url"),
    secret: randomBytes(32).toString("base64url"),
  };
  // `wx`: two processes starting on the same dir must not each write different passwords.
  try {
    await writeFile(file, JSON.stringify(creds, null, 2) + "\n", { mode: 0o600, flag: "wx" });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return loadOrCreateCredentials(dir);
    throw e;
  }
  return creds;
}

/** Ready means the HTTP API answers and auth is on: an unauthenticated `GET /v2/` gets 401. */
async function waitForAuthChallenge(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  for (;;) {
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.status === 401) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() > deadline) {
      throw new TransientError(`docker-registry at ${url} not ready after ${timeoutMs} ms (${last})`);
    }
    await sleep(50);
  }
}
