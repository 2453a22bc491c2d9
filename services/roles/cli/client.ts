import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Config } from "../../platform/env.js";
import { liveServerOf } from "../../platform/pid-file.js";

/** How long the CLI waits for the server's health check to answer before it says so. */
const CONNECT_CHECK_MS = 3000;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The CLI's view of the API: JSON in, JSON out, errors as ApiError with the server's code and message. */
export class ApiClient {
  private reachable: Promise<void> | undefined;

  private constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly where: Pick<Config, "home"> & { urlFrom: Config["cli"]["urlFrom"] },
  ) {}

  /** The token comes from SLIPWAY_TOKEN; on the server's own machine the admin token file will do. */
  static async fromConfig(config: Config): Promise<ApiClient> {
    let token = config.cli.token;
    if (!token) {
      token =
        (await readFile(path.join(config.home, "admin-token"), "utf8").catch(() => "")).trim() || undefined;
    }
    return new ApiClient(config.cli.url, token, { home: config.home, urlFrom: config.cli.urlFrom });
  }

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    return this.answer<T>(method, route, await this.raw(method, route, body));
  }

  /** Every item of a paged list: follows each page's `Link: <…>; rel="next"` to the end. */
  async list<T>(route: string): Promise<T[]> {
    const items: T[] = [];
    for (let next: string | undefined = route; next !== undefined;) {
      const res = await this.raw("GET", next);
      items.push(...(await this.answer<T[]>("GET", next, res)));
      next = nextLink(res.headers.get("link"));
    }
    return items;
  }

  private async answer<T>(method: string, route: string, res: Response): Promise<T> {
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      data = undefined;
    }
    const err = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (!res.ok && err?.message) throw new ApiError(res.status, err.code ?? "http_error", err.message);
    if (!res.ok || (text && data === undefined)) {
      // Every answer of Slipway's API is JSON, errors included: this is some other program.
      throw new ApiError(
        res.status,
        "not_slipway",
        `set SLIPWAY_URL (or SLIPWAY_HOST and SLIPWAY_PORT) to where \`slipway server\` listens: ${this.baseUrl} answered ${method} ${route} with HTTP ${res.status}, not as Slipway does`,
      );
    }
    return data as T;
  }

  async raw(method: string, route: string, body?: unknown): Promise<Response> {
    this.reachable ??= this.checkReachable();
    await this.reachable;
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    try {
      return await fetch(`${this.baseUrl}${route}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      throw new ApiError(
        0,
        "unreachable",
        `cannot reach the Slipway server at ${this.baseUrl} (set SLIPWAY_URL): ${String((cause as Error).cause ?? cause)}`,
      );
    }
  }

  /**
   * The health check, bounded, before the first request: fetch alone waits for the kernel's connect
   * timeout on an address that drops packets, and for minutes on a port whose program never answers.
   */
  private async checkReachable(): Promise<void> {
    const problem = await healthProblem(this.baseUrl);
    if (problem === undefined) return;
    const home = this.where.home;
    const server =
      (await liveServerOf(path.join(home, "redis", "redis.pid"))) ??
      (await liveServerOf(path.join(home, "registry", "registry.pid")));
    throw new ApiError(
      0,
      "unreachable",
      [
        `set SLIPWAY_URL (or SLIPWAY_HOST and SLIPWAY_PORT) to where \`slipway server\` listens: no Slipway server answers at ${this.baseUrl} (from ${this.where.urlFrom}): ${problem}`,
        server === undefined
          ? `  no Slipway server runs from ${home}; start one with \`npm start\` in the checkout (or \`slipway server\`)`
          : `  a Slipway server runs from ${home} (pid ${server}); use the SLIPWAY_HOST and SLIPWAY_PORT it was started with`,
      ].join("\n"),
    );
  }
}

/** The path of a Link header's rel="next" (the API answers paths on its own origin). */
function nextLink(header: string | null): string | undefined {
  const m = header ? /<([^>]+)>\s*;\s*rel="next"/.exec(header) : null;
  return m?.[1]?.startsWith("/") ? m[1] : undefined;
}

/** Why nothing answers HTTP at `baseUrl` (refused, or silent for 3 s), or undefined when something does. */
async function healthProblem(baseUrl: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${baseUrl}/api/v1/healthz`, { signal: AbortSignal.timeout(CONNECT_CHECK_MS) });
    // Any answer will do: whether it is Slipway's shows in the answer to the command's own request.
    await res.body?.cancel();
    return undefined;
  } catch (error) {
    if ((error as Error).name === "TimeoutError") return `no answer within ${CONNECT_CHECK_MS / 1000} s`;
    const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
    if (cause?.code === "ECONNREFUSED") return "connection refused";
    return String(cause ?? error);
  }
}
