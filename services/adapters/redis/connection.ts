import { Redis, type RedisOptions } from "ioredis";

/**
 * How long one Redis command may take before its caller gets an error. Every command Slipway sends is
 * short (the longest, XREAD BLOCK in log followers, blocks 1 s), so a command still unanswered after
 * this is talking to a Redis that is gone or hung.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 3000;
const CONNECT_TIMEOUT_MS = 2000;
/** Reconnect delays grow by this much per attempt, up to the cap: quick after a blip, gentle after. */
const RECONNECT_STEP_MS = 100;
const RECONNECT_CAP_MS = 1000;

/**
 * Options of every connection that answers a request or moves state: a command fails within
 * REDIS_COMMAND_TIMEOUT_MS instead of hanging, a command in flight when the connection drops fails at
 * once instead of being sent again (a webhook must not wait through reconnects; its sender retries on
 * the 503), and commands sent while disconnected fail at the next failed reconnect, within a second.
 * The connection itself reconnects forever, so Slipway resumes on its own once Redis is back.
 */
export const COMMAND_OPTIONS: RedisOptions = {
  commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
  connectTimeout: CONNECT_TIMEOUT_MS,
  maxRetriesPerRequest: 0,
  retryStrategy: (attempt) => Math.min(attempt * RECONNECT_STEP_MS, RECONNECT_CAP_MS),
};

/**
 * BullMQ workers' connections: BullMQ requires `maxRetriesPerRequest: null` there (its blocking fetch
 * must survive a reconnect), and blocking commands must not time out, so no command timeout either. A
 * worker simply waits while Redis is down; shutdown does not wait for it (see closeConnection).
 */
export const WORKER_OPTIONS: RedisOptions = {
  connectTimeout: CONNECT_TIMEOUT_MS,
  maxRetriesPerRequest: null,
  retryStrategy: COMMAND_OPTIONS.retryStrategy,
};

/** A connection with COMMAND_OPTIONS (plus `extra`). */
export function commandConnection(url: string, extra: RedisOptions = {}): Redis {
  return quiet(new Redis(url, { ...COMMAND_OPTIONS, ...extra }));
}

/** A connection with WORKER_OPTIONS, for BullMQ workers. */
export function workerConnection(url: string): Redis {
  return quiet(new Redis(url, WORKER_OPTIONS));
}

/** Another connection with the same options (pub/sub, WATCH, XREAD BLOCK need their own). */
export function duplicateConnection(redis: Redis): Redis {
  return quiet(redis.duplicate());
}

/**
 * Connection errors are not logged per connection: RedisHealth logs an outage once, when it starts
 * and when it ends. Without a listener ioredis prints every failed reconnect of every connection.
 */
function quiet(redis: Redis): Redis {
  redis.on("error", () => undefined);
  return redis;
}

/**
 * Closes a connection without waiting on Redis when Redis is not there: QUIT (which lets queued
 * commands finish) only on a ready connection and for at most a second, otherwise disconnect. A QUIT
 * sent to a reconnecting connection would wait for a Redis that may never come back.
 */
export async function closeConnection(redis: Redis): Promise<void> {
  if (redis.status === "end") return;
  if (redis.status === "ready") {
    const quit = redis.quit().then(
      () => true,
      () => false,
    );
    const timer = new Promise<false>((resolve) => setTimeout(() => resolve(false), 1000).unref());
    if (await Promise.race([quit, timer])) return;
  }
  redis.disconnect();
}

/**
 * True when `error` is the client telling that Redis cannot be reached (or answers too slowly), as
 * opposed to Redis refusing a command: what an HTTP caller should retry later rather than report.
 */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === "MaxRetriesPerRequestError") return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
  return CONNECTION_MESSAGES.some((m) => error.message.startsWith(m));
}

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTCONN"]);
const CONNECTION_MESSAGES = [
  "Command timed out",
  "Connection is closed",
  "Stream isn't writeable",
  "Reached the max retries per request limit",
  // Redis itself, while it reloads its data after a restart.
  "LOADING",
];
