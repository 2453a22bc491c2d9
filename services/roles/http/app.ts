import express, { type Express } from "express";
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../platform/logger.js";
import { NotFoundError } from "../../platform/errors.js";
import type { Readiness } from "../../ports/readiness.js";
import { errorAnswer, errorHandler } from "./errors.js";
import type { FrontProxy } from "./proxy.js";

/**
 * A route served on the bare node:http request, before Express sees it: Express's per-request work
 * (prototype swaps, the router's walk through every layer) was a fifth of a webhook delivery's cost.
 * Answers `undefined` when the request is not its own (Express then serves it as if this did not
 * exist), else the promise of its answer; a rejection is answered by the one error mapper. A raw router
 * offers one as its `front` property (see `withFront`).
 */
export type FrontHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void> | undefined;

/** `router`, also serving what it can before Express through `front`. */
export function withFront<T extends express.RequestHandler>(router: T, front: FrontHandler): T {
  return Object.assign(router, { front });
}

/**
 * Slipway's one HTTP surface. Order is the point of this function:
 * 1. the front proxy claims `Host: <tool>.localhost` before anything parses the request;
 * 2. git and webhook routers read raw bodies, so they come before any JSON parser;
 * 3. the API parses JSON itself; 4. one error mapper answers for all of them.
 * While `readiness` says Redis is down, everything after the front proxy is answered 503 with
 * Retry-After before any work starts (running tools' traffic still flows while their routes are known).
 * Raw routers' front handlers run before all of that, in the same order, only for requests the front
 * proxy does not claim and only while ready: whatever they decline goes through Express as before.
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
  const fronts = deps.rawRouters.flatMap((r) => (r as { front?: FrontHandler }).front ?? []);
  if (fronts.length > 0) serveFrontsFirst(app, fronts, deps);
  return app;
}

/**
 * Wraps `app.handle`, where Express starts its work for every server made from the app (`app.listen`,
 * `http.createServer(app)`): a front handler that takes the request answers it there.
 */
function serveFrontsFirst(
  app: Express,
  fronts: readonly FrontHandler[],
  deps: {
    readonly logger: Logger;
    readonly proxy?: FrontProxy | undefined;
    readonly readiness?: Readiness | undefined;
  },
): void {
  const expressHandle = (app as unknown as { handle: ExpressHandle }).handle.bind(app);
  const handle: ExpressHandle = (req, res, next) => {
    if (deps.proxy?.toolOf(req.headers.host) === undefined && deps.readiness?.check() === undefined) {
      for (const front of fronts) {
        const answered = front(req, res);
        if (answered) {
          answered.catch((error: unknown) => answerError(req, res, error, deps));
          return;
        }
      }
    }
    expressHandle(req, res, next);
  };
  (app as unknown as { handle: ExpressHandle }).handle = handle;
}

type ExpressHandle = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;

/** A front handler's failure, answered as errorHandler answers Express's. */
function answerError(
  req: IncomingMessage,
  res: ServerResponse,
  error: unknown,
  deps: { readonly logger: Logger; readonly readiness?: Readiness | undefined },
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const requestId = requestIdOf(req.headers["x-request-id"]);
  const path = (req.url ?? "").split("?")[0];
  const log = deps.logger.child({ requestId, method: req.method, path });
  const { status, headers, body } = errorAnswer(error, { log, requestId }, deps.readiness);
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
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
