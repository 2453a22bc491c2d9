import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Logger } from "../../platform/logger.js";
import {
  hasNoWebservice,
  upstreamsOf,
  type Route,
  type StateStore,
  type Upstream,
} from "../../ports/store.js";

/**
 * The front proxy of the local profile: `Host: <tool>.localhost` reaches the tool's live webservice.
 * Routes are cached in memory and dropped when the deployer publishes a change, so a switch takes
 * effect at once in every process. Requests take turns over the route's replicas (round robin). A
 * request that finds its replica gone before anything was answered (a crashed copy, or the old release
 * stopped a moment after the switch) tries the route's other replicas, then the fresh route, so neither
 * a switch nor one dead replica loses a request.
 */
export class FrontProxy {
  private readonly cache = new Map<string, Route | null>();
  /** Per tool, the turn of the next request; only ever taken modulo the replica count. */
  private readonly turns = new Map<string, number>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  private constructor(
    private readonly store: StateStore,
    private readonly domain: string,
    private readonly logger: Logger,
  ) {}

  static async create(store: StateStore, domain: string, logger: Logger): Promise<FrontProxy> {
    const proxy = new FrontProxy(store, domain, logger);
    await store.watchRoutes((tool) => proxy.cache.delete(tool));
    return proxy;
  }

  /** The tool a Host header names, or undefined when the request is for Slipway itself. */
  toolOf(hostHeader: string | undefined): string | undefined {
    if (!hostHeader) return undefined;
    const host = hostHeader.replace(/:\d+$/, "").toLowerCase();
    const suffix = `.${this.domain}`;
    if (!host.endsWith(suffix)) return undefined;
    const tool = host.slice(0, -suffix.length);
    return /^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$/.test(tool) ? tool : undefined;
  }

  async handle(tool: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Buffer small bodies so a retry can resend them; webservices behind Slipway get forms, not uploads.
    const body = await readBody(req, 10 * 1024 * 1024);
    if (body === undefined) {
      reply(res, 413, "request body too large for the front proxy");
      return;
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      const route = await this.route(tool, attempt > 0);
      if (!route) {
        reply(
          res,
          503,
          `tool "${tool}" has no running webservice (stopped, or never deployed); push to deploy one or run \`slipway webservice start\``,
        );
        return;
      }
      if (hasNoWebservice(route)) {
        reply(
          res,
          503,
          `${tool} has no webservice (its Procfile defines no web process); add a \`web:\` line to the Procfile to serve HTTP, its other processes run as jobs (\`slipway jobs list\`)`,
        );
        return;
      }
      const upstreams = upstreamsOf(route);
      const first = this.turn(tool);
      for (let i = 0; i < upstreams.length; i++) {
        const upstream = upstreams[(first + i) % upstreams.length]!;
        if ((await this.forward(tool, upstream, req, body, res)) === "done") return;
      }
      await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
    }
    reply(res, 502, `tool "${tool}"'s webservice is not answering`);
  }

  private async route(tool: string, fresh: boolean): Promise<Route | undefined> {
    if (!fresh && this.cache.has(tool)) return this.cache.get(tool) ?? undefined;
    const route = await this.store.getRoute(tool);
    this.cache.set(tool, route ?? null);
    return route;
  }

  private turn(tool: string): number {
    const n = this.turns.get(tool) ?? 0;
    this.turns.set(tool, (n + 1) % Number.MAX_SAFE_INTEGER);
    return n;
  }

  private forward(
    tool: string,
    upstream: Upstream,
    req: IncomingMessage,
    body: Buffer,
    res: ServerResponse,
  ): Promise<"done" | "retry"> {
    return new Promise((resolve) => {
      const headers = {
        ...req.headers,
        "x-forwarded-host": req.headers.host ?? "",
        "x-forwarded-proto": "http",
      };
      const request = http.request(
        {
          host: upstream.host,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers,
          agent: this.agent,
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          up.on("end", () => resolve("done"));
          up.on("error", () => resolve("done"));
        },
      );
      request.on("error", (error: NodeJS.ErrnoException) => {
        // Nothing was sent to the client yet: safe to try another replica, or the (possibly new) route.
        if (!res.headersSent) {
          this.logger.debug(
            { tool, upstream: `${upstream.host}:${upstream.port}`, error: error.code },
            "backend refused; retrying",
          );
          resolve("retry");
        } else {
          res.destroy();
          resolve("done");
        }
      });
      request.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function reply(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: { code: status === 503 ? "not_found" : "internal", message } }));
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        resolve(undefined);
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}
