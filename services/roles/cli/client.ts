import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Config } from "../../platform/env.js";

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
  private constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  /** The token comes from SLIPWAY_TOKEN; on the server's own machine the admin token file will do. */
  static async fromConfig(config: Config): Promise<ApiClient> {
    let token = config.cli.token;
    if (!token) {
      token =
        (await readFile(path.join(config.home, "admin-token"), "utf8").catch(() => "")).trim() || undefined;
    }
    return new ApiClient(config.cli.url, token);
  }

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    const res = await this.raw(method, route, body);
    const text = await res.text();
    const data = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const err = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ApiError(res.status, err?.code ?? "http_error", err?.message ?? `HTTP ${res.status}`);
    }
    return data as T;
  }

  async raw(method: string, route: string, body?: unknown): Promise<Response> {
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
}
