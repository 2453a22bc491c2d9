import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Logger } from "../../platform/logger.js";
import type { Build } from "../../domain/builds/build.js";
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
    private readonly publicUrl: string,
  ) {}

  static async create(
    store: StateStore,
    domain: string,
    logger: Logger,
    /** Slipway's own address, for the git remote a tool with no build is told to push to. */
    publicUrl = "http://localhost",
  ): Promise<FrontProxy> {
    const proxy = new FrontProxy(store, domain, logger, publicUrl);
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
        await this.replyWithoutRoute(tool, res);
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

  /**
   * Says why there is nothing to forward to: no such tool (404), no release yet and what its newest
   * build is doing (on a first start the build may wait minutes for the stack images), or stopped.
   */
  private async replyWithoutRoute(tool: string, res: ServerResponse): Promise<void> {
    if (!(await this.store.getTool(tool))) {
      reply(
        res,
        404,
        `no tool named "${tool}"; check the address, or create it with \`slipway tools create ${tool}\``,
      );
      return;
    }
    const [release] = await this.store.listReleases(tool, 1);
    if (release) {
      reply(
        res,
        503,
        `tool "${tool}" has no running webservice (stopped); push to deploy again or run \`slipway webservice start\``,
      );
      return;
    }
    const [build] = await this.store.listBuilds(tool, 1);
    reply(res, 503, noReleaseMessage(tool, build, `${this.publicUrl.replace(/\/+$/, "")}/git/${tool}.git`));
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
          const cookies = up.headers["set-cookie"];
          if (cookies) up.headers["set-cookie"] = cookies.map(hostOnlyCookie);
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

/** The 503 text for a tool that was never released: its newest build's state, or how to make one. */
export function noReleaseMessage(tool: string, build: Build | undefined, gitUrl: string): string {
  if (!build) return `${tool} has no release yet: no build yet: push to ${gitUrl}`;
  const phase =
    build.status === "pending" || build.status === "running" ? ` (phase ${build.phase ?? "queued"})` : "";
  // A pending build's reason says why it was started; a failed one's says what to fix.
  const why =
    build.reason && (build.status === "failure" || build.status === "cancelled") ? `: ${build.reason}` : "";
  return `${tool} has no release yet: build ${build.id} is ${build.status}${phase}${why}`;
}

/**
 * A tool's cookie without its Domain attribute, so the browser keeps it for the tool's own host. With
 * `Domain=<Slipway's domain>` it would be sent to Slipway's own host (API, dashboard) and to every
 * other tool, and could overwrite their cookies (unless the operator's domain is on the Public Suffix
 * List, as toolforge.org is).
 */
export function hostOnlyCookie(cookie: string): string {
  return cookie
    .split(";")
    .filter((part, i) => i === 0 || !/^\s*domain\s*=/i.test(part))
    .join(";");
}

function reply(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(
    JSON.stringify({ error: { code: status === 503 || status === 404 ? "not_found" : "internal", message } }),
  );
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
