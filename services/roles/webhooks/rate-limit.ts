import type { Request, RequestHandler } from "express";
import { RateLimitedError } from "../../platform/errors.js";
import type { RateLimiter } from "../../ports/rate-limiter.js";

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
  if (!limits || limits.perAddress <= 0) return;
  const decision = await limits.limiter.take(`hook-addr:${address}`, limits.perAddress);
  if (!decision.allowed) {
    throw rateLimited(`too many webhook requests from ${address}`, decision.retryAfterMs, limits.perAddress);
  }
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
  if (!limits || limits.perTool <= 0) return;
  const decision = await limits.limiter.take(`hook-tool:${tool}`, limits.perTool);
  if (!decision.allowed) {
    throw rateLimited(
      `too many webhook deliveries for tool "${tool}"`,
      decision.retryAfterMs,
      limits.perTool,
    );
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
