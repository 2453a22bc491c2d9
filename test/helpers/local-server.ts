import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll } from "vitest";
import { loadConfig, type Config } from "../../services/platform/env.js";
import { createLogger, type Logger } from "../../services/platform/logger.js";
import { freePort } from "../../services/platform/net.js";
import { run } from "../../services/platform/process.js";
import { startServer, type Role, type RunningServer } from "../../services/roles/server/server.js";
import { waitFor } from "./apps.js";
import { registryHostOf, removeAtEnd, removeToolContainers } from "./leftovers.js";
import { TEST_STACK_HOME, testBuildBackend } from "./stack.js";

/**
 * The local profile as the integration tests start it: `startServer` on free ports with the cached
 * stack images, plus the API client and the real CLI (dist/, `npm run build` first) that talk to it.
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");

export interface LocalServer {
  server: RunningServer;
  config: Config;
  /** The front proxy's port: `viaProxy(port, tool)`. */
  port: number;
  home: string;
}

export interface LocalServerOptions {
  /** SLIPWAY_HOME; a new temporary folder `slipway-<name>-…` when absent. */
  home?: string;
  name?: string;
  /** Settings on top of the defaults (e.g. SLIPWAY_HEALTH_TIMEOUT_S, REDIS_URL for an outside Redis). */
  env?: Record<string, string>;
  /** The server's logger; by default SLIPWAY_TEST_LOG_LEVEL (or warn) to stderr. */
  logger?: Logger;
  role?: Role;
  /** Wait for the stack images (builder roles); false for an API-only server. */
  ready?: boolean;
  /** Settings no environment variable gives (Config's test-only ones, e.g. usageSampleMs). */
  config?: Partial<Config>;
}

export async function startLocalServer(options: LocalServerOptions = {}): Promise<LocalServer> {
  const home = options.home ?? (await mkdtemp(path.join(os.tmpdir(), `slipway-${options.name ?? "test"}-`)));
  const port = await freePort();
  const env: Record<string, string> = {
    SLIPWAY_HOME: home,
    SLIPWAY_STACK_HOME: TEST_STACK_HOME,
    SLIPWAY_PORT: String(port),
    SLIPWAY_REGISTRY_PORT: String(await freePort()),
    SLIPWAY_LOG_LEVEL: process.env.SLIPWAY_TEST_LOG_LEVEL ?? "warn",
    ...testBuildBackend(),
    ...options.env,
  };
  // Without an outside Redis the server starts its own, on a free port too.
  if (!env.REDIS_URL) env.SLIPWAY_REDIS_PORT = String(await freePort());
  const config: Config = { ...loadConfig(env), ...options.config };
  removeAtEnd(home, registryHostOf(config));
  const server = await startServer(config, options.logger ?? stderrLogger(config), options.role);
  if (options.ready ?? true) await server.ready;
  return { server, config, port, home };
}

/**
 * One local server for a test file: started before its tests; afterwards closed, with `tools`'
 * containers and networks and its home removed. The fields are set once `beforeAll` has run.
 */
export function localServerForFile(options: LocalServerOptions, tools: readonly string[]): LocalServer {
  const local = {} as LocalServer;
  beforeAll(async () => {
    Object.assign(local, await startLocalServer(options));
  }, 1_200_000);
  afterAll(async () => {
    await (local.server as RunningServer | undefined)?.close();
    for (const tool of tools) await removeToolContainers(tool);
    if (local.home) await rm(local.home, { recursive: true, force: true });
  });
  return local;
}

/** The logger `startLocalServer` gives a server by default; for a restart with the same config. */
export function stderrLogger(config: Config): Logger {
  return createLogger({ level: config.logLevel, destination: process.stderr });
}

/** The build id `slipway push`/`git push` prints. */
export function buildIdFrom(pushOutput: string): string {
  const m = /build (\w+) queued/.exec(pushOutput);
  if (!m) throw new Error(`no build id in push output:\n${pushOutput}`);
  return m[1]!;
}

/** A logger for the server that keeps every line, for tests that read the server's log. */
export function capturedLogger(level: string): { logger: Logger; text: () => string } {
  let text = "";
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString("utf8");
      done();
    },
  });
  return { logger: createLogger({ level, destination }), text: () => text };
}

export interface CliOptions {
  /** SLIPWAY_TOKEN; the admin token by default. */
  token?: string;
  /** SLIPWAY_TOOL; inherited from the environment when absent. */
  tool?: string;
  input?: string;
}

/**
 * The API client and CLI runner of a server the test starts later (hence the getter): `api` throws on
 * an error status, `request` returns status and body for tests that assert on errors.
 */
export function clientOf(server: () => RunningServer) {
  async function send(route: string, init: RequestInit, token: string | undefined) {
    const s = server();
    return fetch(`${s.url}${route}`, {
      ...init,
      headers: {
        authorization: `Bearer ${token ?? s.adminToken}`,
        "content-type": "application/json",
        ...init.headers,
      },
    });
  }
  async function api<T>(route: string, init: RequestInit = {}, token?: string): Promise<T> {
    const res = await send(route, init, token);
    const body = (await res.json()) as T;
    if (!res.ok) throw new Error(`${route}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  }
  async function request<T = unknown>(
    route: string,
    init: RequestInit = {},
    token?: string,
  ): Promise<{ status: number; body: T }> {
    const res = await send(route, init, token);
    return { status: res.status, body: (await res.json()) as T };
  }
  /** Waits for a build to end, whichever way (a slow build: up to ten minutes). */
  function buildDone<T extends { status: string }>(id: string): Promise<T> {
    return waitFor(
      `build ${id}`,
      async () => {
        const b = await api<T>(`/api/v1/builds/${id}`);
        return ["success", "failure", "cancelled", "superseded"].includes(b.status) ? b : undefined;
      },
      600_000,
      500,
    );
  }
  /** The real CLI, as `slipway` runs it. */
  function cli(args: string[], options: CliOptions = {}) {
    const s = server();
    return run(process.execPath, [path.join(repoRoot, "dist/services/main.js"), ...args], {
      env: {
        ...process.env,
        SLIPWAY_URL: s.url,
        SLIPWAY_TOKEN: options.token ?? s.adminToken,
        ...(options.tool === undefined ? {} : { SLIPWAY_TOOL: options.tool }),
      },
      input: options.input,
      allowFailure: true,
    });
  }
  return { api, request, buildDone, cli };
}

export { removeToolContainers };
