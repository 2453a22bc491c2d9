import express, { type Express } from "express";
import { randomUUID } from "node:crypto";
import type { Logger } from "../../platform/logger.js";
import { NotFoundError } from "../../platform/errors.js";
import type { Readiness } from "../../ports/readiness.js";
import { errorHandler } from "./errors.js";
import type { FrontProxy } from "./proxy.js";

/**
 * Slipway's one HTTP surface. Order is the point of this function:
 * 1. the front proxy claims `Host: <tool>.localhost` before anything parses the request;
 * 2. git and webhook routers read raw bodies, so they come before any JSON parser;
 * 3. the API parses JSON itself; 4. one error mapper answers for all of them.
 * While `readiness` says Redis is down, everything after the front proxy is answered 503 with
 * Retry-After before any work starts (running tools' traffic still flows while their routes are known).
 */
export function createApp(deps: {
  readonly logger: Logger;
  readonly proxy?: FrontProxy | undefined;
  readonly rawRouters: readonly express.RequestHandler[];
  readonly api: express.RequestHandler;
  readonly readiness?: Readiness | undefined;
}): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", "loopback");
  const proxy = deps.proxy;
  if (proxy) {
    app.use((req, res, next) => {
      const tool = proxy.toolOf(req.headers.host);
      if (tool === undefined) {
        next();
        return;
      }
      proxy.handle(tool, req, res).catch(next);
    });
  }
  app.use((req, _res, next) => {
    // Made on first use: most requests (webhook deliveries) never log, and a child logger per
    // request is a measurable part of a delivery's cost.
    let id: string | undefined;
    let log: Logger | undefined;
    Object.defineProperty(req, "requestId", {
      configurable: true,
      get: () => (id ??= requestIdOf(req.headers["x-request-id"])),
    });
    Object.defineProperty(req, "log", {
      configurable: true,
      get: () =>
        (log ??= deps.logger.child({ requestId: req.requestId, method: req.method, path: req.path })),
    });
    next();
  });
  const readiness = deps.readiness;
  if (readiness) app.use((_req, _res, next) => next(readiness.check()));
  for (const r of deps.rawRouters) app.use(r);
  app.use(deps.api);
  app.use((_req, _res) => {
    throw new NotFoundError("no such endpoint; the API is under /api/v1 (see /api/v1/openapi.json)");
  });
  app.use(errorHandler(deps.logger, deps.readiness));
  return app;
}

/** The caller's X-Request-Id when it is a plain token (it lands in logs), else a new one. */
function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === "string" && /^[\w.:-]{1,64}$/.test(header) ? header : randomUUID();
}

declare module "express-serve-static-core" {
  interface Request {
    /** This request's logger: the server's, with its request id, method and path. */
    log?: Logger;
    /** The id in its log lines, also sent back with a 5xx so a report can name it. */
    requestId?: string;
  }
}
