import cluster, { type Worker } from "node:cluster";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../../platform/logger.js";
import { SlipwayError } from "../../platform/errors.js";
import type { Closers } from "./profiles/profile.js";
import type { Shared } from "./roles/shared.js";

/** True in a process forked by `startApiProcesses`: it runs the API role alone. */
export function isApiProcess(): boolean {
  return cluster.isWorker;
}

/** The worker's number in answers' `X-Slipway-Process` (never its pid); undefined outside a cluster. */
export function apiProcessId(): number | undefined {
  return cluster.worker?.id;
}

/**
 * What a worker is told of the stack this process started, as the environment an operator would give a
 * separate `--role api` process: the Redis and, unless one is configured already, the embedded registry
 * (its account travels in the worker's environment, readable only by this user, never logged).
 */
export function apiProcessEnv(
  shared: Pick<Shared, "config" | "redisUrl" | "images">,
): Record<string, string> {
  const env: Record<string, string> = { REDIS_URL: shared.redisUrl };
  if (shared.config.registry) return env;
  const { url, username, password } = shared.images.endpoint;
  return {
    ...env,
    SLIPWAY_REGISTRY_URL: url,
    SLIPWAY_REGISTRY_KIND: "oci",
    SLIPWAY_REGISTRY_USERNAME: username,
    SLIPWAY_REGISTRY_PASSWORD: password,
  };
}

/** A worker that dies within this of its start is forked again only after it, not in a tight loop. */
const RESTART_PAUSE_MS = 1000;
/** How long a worker has to close its connections on shutdown before it is killed. */
const STOP_MS = 5000;

/**
 * `SLIPWAY_API_PROCESSES` > 1: the API role in `count` node:cluster workers sharing its port, while
 * this process (the primary) keeps the other roles and the local stack. Each worker runs the whole API
 * role on the same Redis (its own connections, tool cache kept fresh over pub/sub, metrics counted in
 * Redis, notifiers in consumer groups), so any of them can answer any request. `env` is what a worker
 * needs to find the stack this process started (Redis, the registry) instead of starting its own.
 *
 * The primary hands each new connection to the workers in turn (Node's default round-robin): with
 * keep-alive clients like GitLab's a connection carries many deliveries, and letting the kernel pick
 * (SCHED_NONE) can give one worker most of a burst's connections. A worker that dies is replaced;
 * the closer registered stops them all (SIGTERM, then SIGKILL after STOP_MS). Returns the URL they
 * answer at.
 */
export async function startApiProcesses(
  count: number,
  env: Record<string, string>,
  host: string,
  logger: Logger,
  closers: Closers,
): Promise<string> {
  const log = logger.child({ component: "api-processes" });
  let stopping = false;
  const fork = () => {
    const worker = cluster.fork(env);
    const started = Date.now();
    worker.once("exit", (code, signal) => {
      if (stopping) return;
      log.warn(
        { worker: worker.id, pid: worker.process.pid, code, signal },
        "api process died; starting another",
      );
      const pause = Math.max(0, RESTART_PAUSE_MS - (Date.now() - started));
      void sleep(pause).then(() => (stopping ? undefined : fork()));
    });
    return worker;
  };
  closers.add(async () => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
    await Promise.all(workers.map(stop));
  });
  const first = Array.from({ length: count }, fork);
  // The workers share one port, the one the first to listen was given (SLIPWAY_PORT=0 picks it then).
  const [port] = await Promise.all(first.map(listening));
  const url = `http://${host}:${port}`;
  log.info({ processes: count, url }, "api processes listening");
  return url;
}

/** The port `worker` listens on, once it does. */
function listening(worker: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(
        new SlipwayError("internal", `api process ${worker.id} exited (code ${code}) before it listened`),
      );
    worker.once("exit", onExit);
    worker.once("listening", (address) => {
      worker.off("exit", onExit);
      resolve(address.port);
    });
  });
}

async function stop(worker: Worker): Promise<void> {
  if (worker.isDead()) return;
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  // SIGTERM runs the worker's own shutdown (main.ts), which closes its server and connections.
  worker.process.kill("SIGTERM");
  const timer = setTimeout(() => worker.process.kill("SIGKILL"), STOP_MS);
  await exited;
  clearTimeout(timer);
}
