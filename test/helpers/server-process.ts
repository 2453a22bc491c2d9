import { spawn, type ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { freePort } from "../../services/platform/net.js";
import { waitFor } from "./apps.js";
import { removeAtEnd } from "./leftovers.js";
import { TEST_STACK_HOME, testBuildBackend } from "./stack.js";

/**
 * `slipway server` as `npm start` runs it: a real `node dist/services/main.js server` child, so a test can
 * `kill -9` it the way a crash or the OOM killer would. Its ports are fixed at creation, so a restart on
 * the same home asks for the same ports as a real restart would.
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");

export interface ServerPorts {
  readonly api: number;
  readonly redis: number;
  readonly registry: number;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** stdout and stderr so far (pino JSON lines). */
  output(): string;
  /** Resolves with the exit code (or signal) once the process is gone. */
  readonly exited: Promise<number | NodeJS.Signals | null>;
}

export async function serverPorts(): Promise<ServerPorts> {
  return { api: await freePort(), redis: await freePort(), registry: await freePort() };
}

/** Starts the server and waits until its API answers, or fails with its output if it exits first. */
export async function startServerProcess(
  home: string,
  ports: ServerPorts,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  // An outside registry (SLIPWAY_REGISTRY_URL) may be shared with other servers: its images are left.
  removeAtEnd(home, env.SLIPWAY_REGISTRY_URL ? undefined : `127.0.0.1:${ports.registry}`);
  const child = spawn(process.execPath, [path.join(repoRoot, "dist/services/main.js"), "server"], {
    env: {
      ...process.env,
      SLIPWAY_HOME: home,
      SLIPWAY_STACK_HOME: TEST_STACK_HOME,
      SLIPWAY_PORT: String(ports.api),
      SLIPWAY_REDIS_PORT: String(ports.redis),
      SLIPWAY_REGISTRY_PORT: String(ports.registry),
      SLIPWAY_LOG_LEVEL: "info",
      ...testBuildBackend(),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stdout?.on("data", (c: Buffer) => (text += c.toString("utf8")));
  child.stderr?.on("data", (c: Buffer) => (text += c.toString("utf8")));
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal)),
  );
  const url = `http://127.0.0.1:${ports.api}`;
  const server: ServerProcess = { child, url, output: () => text, exited };
  let gone: number | NodeJS.Signals | null | undefined;
  void exited.then((c) => (gone = c));
  await waitFor(
    `slipway server on ${url}`,
    async () => {
      if (gone !== undefined) return "exited";
      // This process's own line: another server on the same port would answer the health check too.
      if (!text.includes('"msg":"slipway is listening"')) return undefined;
      const res = await fetch(`${url}/api/v1/healthz`, { signal: AbortSignal.timeout(2_000) });
      return res.ok ? "up" : undefined;
    },
    120_000,
    200,
  );
  if (gone !== undefined) throw new Error(`slipway server exited with ${gone}:\n${text.slice(-3000)}`);
  return server;
}

/** SIGTERM, then SIGKILL after 30 s; resolves when the process is gone. */
export async function stopServerProcess(server: ServerProcess | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill("SIGTERM");
  const timer = setTimeout(() => server.child.kill("SIGKILL"), 30_000);
  await server.exited;
  clearTimeout(timer);
}

/** The command line of a live process; undefined when there is none with that pid, or a zombie. */
export async function cmdlineOf(pid: number): Promise<string[] | undefined> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
    return argv.length > 0 ? argv : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The redis-server and docker-registry processes of a test's server, found by what only they carry: the
 * home's path, or one of the test's own ports (`redis-server 127.0.0.1:<port>` is all Redis's default
 * process title shows). Zombies are left out.
 */
export async function childrenOf(
  home: string,
  ports: readonly number[],
): Promise<{ pid: number; name: "redis-server" | "docker-registry" }[]> {
  const found: { pid: number; name: "redis-server" | "docker-registry" }[] = [];
  for (const entry of await readdir("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const argv = await cmdlineOf(pid);
    const name = /(redis-server|docker-registry)$/.exec(argv?.[0]?.split(" ")[0] ?? "")?.[1];
    if (!argv || !name) continue;
    const line = argv.join(" ");
    // Whole path components and whole port numbers: /tmp/x-1 is not /tmp/x-12, port 4107 not 41071.
    const mine =
      argv.some((a) => a.startsWith(`${home}/`)) ||
      ports.some((p) => new RegExp(`(^| )127\\.0\\.0\\.1:${p}( |$)`).test(line));
    if (mine) {
      found.push({ pid, name: name as "redis-server" | "docker-registry" });
    }
  }
  return found;
}

/** The pid of a test server's redis-server or docker-registry; undefined while there is none. */
export async function childPid(
  home: string,
  ports: readonly number[],
  name: "redis-server" | "docker-registry",
): Promise<number | undefined> {
  return (await childrenOf(home, ports)).find((c) => c.name === name)?.pid;
}

/** Test cleanup: SIGKILLs what {@link childrenOf} finds, and never any other process. */
export async function killLeftovers(home: string, ports: readonly number[]): Promise<number[]> {
  const killed: number[] = [];
  for (const { pid } of await childrenOf(home, ports)) {
    try {
      process.kill(pid, "SIGKILL");
      killed.push(pid);
    } catch {
      // Already gone.
    }
  }
  return killed;
}
