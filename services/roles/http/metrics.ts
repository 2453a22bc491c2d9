import { Router, type RequestHandler } from "express";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { StateStore } from "../../ports/store.js";
import { withFront } from "./app.js";
import { bearerAuth, requireAdmin } from "./auth.js";

/**
 * `GET /metrics` for Prometheus, admin token only (a tool's token is refused with 403): the counts are
 * the whole installation's, every tool's job names among them. Mounted among the raw routers, so the
 * API's JSON parser never sees it.
 */
export function metricsRouter(deps: {
  readonly store: StateStore;
  readonly adminTokenHash: string;
  readonly scrape: () => Promise<{ contentType: string; text: string }>;
}): Router {
  const r = Router();
  r.get("/metrics", bearerAuth(deps.store, deps.adminTokenHash), async (req, res) => {
    requireAdmin(req);
    const { contentType, text } = await deps.scrape();
    res.set("content-type", contentType).set("cache-control", "no-store").send(text);
  });
  return r;
}

/**
 * Counts webhook deliveries (`POST /hooks/<hook>/…`) by hook and outcome once each is answered. `hooks`
 * are the routes that exist: any other path counts as `other`, so an unauthenticated caller cannot
 * make up label values. Counted before Express too (its `front` declines every request after noting
 * it), as the webhook routes are served there; a request noted there is not counted again.
 */
export function webhookDeliveryCounter(
  hooks: readonly string[],
  count: (hook: string, outcome: string) => void,
): RequestHandler {
  const known = new Set(hooks);
  const noted = new WeakSet<IncomingMessage>();
  const note = (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (noted.has(req) || req.method !== "POST" || !path.startsWith("/hooks/")) return;
    noted.add(req);
    const segment = path.split("/")[2] ?? "";
    const hook = known.has(segment) ? segment : "other";
    res.once("finish", () => count(hook, deliveryOutcome(res.statusCode)));
  };
  const middleware: RequestHandler = (req, res, next) => {
    note(req, res, req.path);
    next();
  };
  return withFront(middleware, (req, res) => {
    note(req, res, (req.url ?? "").split("?")[0]!);
    return undefined;
  });
}

/** 202: a build was queued; other 2xx: answered without one (ignored event, duplicate, redelivery). */
export function deliveryOutcome(status: number): string {
  if (status === 202) return "accepted";
  if (status >= 200 && status < 300) return "not_built";
  if (status === 401 || status === 403) return "unauthorized";
  if (status === 429) return "rate_limited";
  if (status >= 400 && status < 500) return "rejected";
  return "error";
}
