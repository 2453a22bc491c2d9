import type { Redis } from "ioredis";
import { UnavailableError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { Readiness } from "../../ports/readiness.js";
import { closeConnection, commandConnection, isConnectionError } from "./connection.js";

/** How often Redis is pinged: a hung Redis (no socket error) is noticed within this plus the timeout. */
const PING_MS = 1000;
const PING_TIMEOUT_MS = 1000;
/** What a 503 asks the caller to wait: about a reconnect attempt and a ping. */
const RETRY_AFTER_S = 2;

/**
 * Whether Redis is up, from a connection of its own: down as soon as that connection drops or a ping
 * goes unanswered, up again once it is ready and answers. Outages are logged once each way, with how
 * long Redis was gone.
 */
export class RedisHealth implements Readiness {
  private up = true;
  private downSince = 0;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
  ) {
    redis.on("close", () => this.mark(false, "connection closed"));
    redis.on("ready", () => void this.ping());
    this.timer = setInterval(() => void this.ping(), PING_MS);
    this.timer.unref();
  }

  static start(url: string, logger: Logger): RedisHealth {
    return new RedisHealth(commandConnection(url, { commandTimeout: PING_TIMEOUT_MS }), logger);
  }

  get isUp(): boolean {
    return this.up;
  }

  check(): UnavailableError | undefined {
    return this.up ? undefined : this.unavailable();
  }

  explain(error: unknown): UnavailableError | undefined {
    return !this.up || isConnectionError(error) ? this.unavailable(error) : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await closeConnection(this.redis);
  }

  private unavailable(cause?: unknown): UnavailableError {
    return new UnavailableError(
      `Slipway's database (Redis) is not reachable right now; nothing was done, retry in ${RETRY_AFTER_S} s`,
      RETRY_AFTER_S,
      { cause },
    );
  }

  private async ping(): Promise<void> {
    if (this.closed) return;
    try {
      await this.redis.ping();
      this.mark(true);
    } catch (error) {
      this.mark(false, error instanceof Error ? error.message : String(error));
    }
  }

  private mark(up: boolean, why?: string): void {
    if (this.closed || up === this.up) return;
    this.up = up;
    if (!up) {
      this.downSince = Date.now();
      this.logger.error({ reason: why }, "Redis is down; answering 503 until it is back");
    } else {
      this.logger.info({ downForMs: Date.now() - this.downSince }, "Redis is back; serving again");
    }
  }
}
