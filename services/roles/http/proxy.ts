import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Logger } from "../../platform/logger.js";
import type { Route, StateStore } from "../../ports/store.js";

/**
 * The front proxy of the local profile: `Host: <tool>.localhost` reaches the tool's live webservice.
 * Routes are cached in memory and dropped when the deployer publishes a change, so a switch takes
 * effect at once in every process. A request that finds its backend gone (the old container stopped a
 * moment after the switch) is retried once against the fresh route, so the switch loses no request.
 */
export class FrontProxy {
  private readonly cache = new Map<string, Route | null>();
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
      const outcome = await this.forward(route, req, body, res);
      if (outcome === "done") return;
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

  private forward(
    route: Route,
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
      const upstream = http.request(
        { host: route.host, port: route.port, method: req.method, path: req.url, headers, agent: this.agent },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          up.on("end", () => resolve("done"));
          up.on("error", () => resolve("done"));
        },
      );
      upstream.on("error", (error: NodeJS.ErrnoException) => {
        // Nothing was sent to the client yet: safe to try the (possibly new) backend again.
        if (!res.headersSent) {
          this.logger.debug({ tool: route.tool, error: error.code }, "backend refused; retrying");
          resolve("retry");
        } else {
          res.destroy();
          resolve("done");
        }
      });
      upstream.end(body);
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
