import type { Request, RequestHandler } from "express";
import type { IntakeLimits } from "../../domain/pipeline/triggers.js";
import { RateLimitedError, SlipwayError } from "../../platform/errors.js";
import type { BucketTake, RateLimiter } from "../../ports/rate-limiter.js";

/** Webhook deliveries per minute; 0 turns a limit off. */
export interface WebhookLimits {
  readonly limiter: RateLimiter;
  readonly perTool: number;
  readonly perAddress: number;
}

/**
 * Checked before anything else, so a flood of unauthenticated requests from one address is cut off
 * before it costs a secret lookup. The address is Express's `req.ip` (the client behind a loopback
 * reverse proxy, since the app trusts only loopback proxies): see `addressOf`.
 */
export async function limitAddress(limits: WebhookLimits | undefined, address: string): Promise<void> {
  await new DeliveryLimits(limits).address(address).spend();
}

/** The address a request's limit is counted for. */
export function addressOf(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? "unknown";
}

/**
 * Checked only after the tool's secret matched: otherwise anyone could spend a tool's budget and keep
 * its real deliveries out.
 */
export async function limitTool(limits: WebhookLimits | undefined, tool: string): Promise<void> {
  await new DeliveryLimits(limits).tool(tool).spend();
}

interface Pending {
  readonly key: string;
  readonly perMinute: number;
  refuse(retryAfterMs: number): RateLimitedError;
}

/**
 * One delivery's limits, in the order they are counted (address, then tool once its secret matched),
 * each taken once: together with the queueing, in the intake's round trip (`take`, see IntakeLimits),
 * or one by one by `spend` when the delivery is answered without reaching the intake (a wrong
 * secret, another event, an ignored ref). The answer is the same either way: the first limit
 * exceeded, whatever else was wrong with the delivery.
 */
export class DeliveryLimits implements IntakeLimits {
  private pending: Pending[] = [];
  private taken: Pending[] = [];

  constructor(private readonly limits: WebhookLimits | undefined) {}

  address(address: string): this {
    return this.add(
      `hook-addr:${address}`,
      this.limits?.perAddress,
      `too many webhook requests from ${address}`,
    );
  }

  tool(tool: string): this {
    return this.add(
      `hook-tool:${tool}`,
      this.limits?.perTool,
      `too many webhook deliveries for tool "${tool}"`,
    );
  }

  take(): readonly BucketTake[] {
    const limiter = this.limits?.limiter;
    this.taken = this.pending;
    this.pending = [];
    return limiter ? this.taken.map((p) => limiter.bucket(p.key, p.perMinute)) : [];
  }

  refuse(index: number, retryAfterMs: number): Error {
    const limit = this.taken[index];
    if (!limit) return new SlipwayError("internal", `no rate limit ${index} was taken`);
    return limit.refuse(retryAfterMs);
  }

  /** Takes the limits not taken yet; throws RateLimitedError for the first one exceeded. */
  async spend(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    for (const limit of pending) {
      const decision = await this.limits!.limiter.take(limit.key, limit.perMinute);
      if (!decision.allowed) throw limit.refuse(decision.retryAfterMs);
    }
  }

  private add(key: string, perMinute: number | undefined, what: string): this {
    if (this.limits && perMinute !== undefined && perMinute > 0) {
      this.pending.push({ key, perMinute, refuse: (ms) => rateLimited(what, ms, perMinute) });
    }
    return this;
  }
}

function rateLimited(what: string, retryAfterMs: number, perMinute: number): RateLimitedError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new RateLimitedError(`${what} (limit ${perMinute} per minute); retry in ${seconds} s`, seconds);
}

/** `limitAddress` as middleware, to mount before a body parser. */
export function addressLimiter(limits: WebhookLimits | undefined): RequestHandler {
  return (req, _res, next) => {
    limitAddress(limits, addressOf(req)).then(() => next(), next);
  };
}
