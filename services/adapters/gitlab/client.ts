import type { Agent as HttpAgent } from "node:http";
import { Gitlab } from "@gitbeaker/rest";
import type { Agent } from "undici";
import { InputError } from "../../platform/errors.js";
import { publicOnlyDispatcher, serviceRefusal } from "../net/public-only.js";

/** How to reach one GitLab instance as one tool's linked credential. */
export interface GitlabConnection {
  /** Base URL of the instance, e.g. `https://gitlab.wikimedia.org`. */
  readonly host: string;
  /** A project (or personal) access token with the `api` scope. Never logged. */
  readonly token: string;
  /**
   * Plain `http://` sends the token in clear text, so it is accepted only for loopback hosts (test
   * doubles) unless the operator allows it explicitly.
   */
  readonly allowHttp?: boolean | undefined;
  /**
   * Hosts that may be on loopback or private addresses (`SLIPWAY_SOURCE_ALLOW_HOSTS`). The URL is a tool
   * owner's, so without this check a link could aim Slipway's requests at Redis or any other local
   * service (SSRF); every connection, redirects included, goes to a public address otherwise.
   */
  readonly allowHosts: readonly string[];
  /** Per-request timeout; gitbeaker's own default is 300 s, far longer than a build should wait. */
  readonly timeoutMs?: number | undefined;
}

export type GitlabApi = InstanceType<typeof Gitlab>;

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Checks a GitLab base URL and returns it normalised (no trailing slash). */
export function parseGitlabHost(host: string, allowHttp = false): string {
  let url: URL;
  try {
    url = new URL(host);
  } catch (error) {
    throw new InputError(
      `invalid GitLab URL "${host.slice(0, 200)}": give the instance's base URL, e.g. https://gitlab.com`,
      {
        cause: error,
        details: { field: "url" },
      },
    );
  }
  if (url.username !== "" || url.password !== "") {
    throw new InputError("the GitLab URL must not contain credentials: pass the token separately", {
      details: { field: "url" },
    });
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && (allowHttp || LOOPBACK.has(url.hostname)))) {
    throw new InputError(
      `GitLab URL ${url.origin} must use https: the access token would otherwise cross the network in clear text`,
      { details: { field: "url" } },
    );
  }
  if (url.search !== "" || url.hash !== "") {
    throw new InputError(`GitLab URL ${url.origin} must not have a query or fragment`, {
      details: { field: "url" },
    });
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, "");
}

/**
 * One dispatcher, and so one connection pool, per allow-list; the list is the operator's config, so in
 * practice one per process. A status reporter is built for every build event: with a dispatcher each,
 * every commit-status post opened its own TCP and TLS connection to GitLab.
 */
const dispatchers = new Map<string, Agent>();

function gitlabDispatcher(allowHosts: readonly string[]): Agent {
  const key = allowHosts.join("\n");
  let dispatcher = dispatchers.get(key);
  if (dispatcher === undefined) {
    dispatcher = publicOnlyDispatcher(allowHosts, serviceRefusal("GitLab"));
    dispatchers.set(key, dispatcher);
  }
  return dispatcher;
}

/** Builds the client; no I/O happens until a method is called. */
export function gitlabApi(connection: GitlabConnection): { api: GitlabApi; host: string } {
  const host = parseGitlabHost(connection.host, connection.allowHttp);
  if (connection.token.trim() === "") {
    throw new InputError("a GitLab access token is required (scope: api)", { details: { field: "token" } });
  }
  const api = new Gitlab({
    host,
    token: connection.token,
    queryTimeout: connection.timeoutMs ?? 10_000,
    // gitbeaker hands `agent` to fetch as its undici `dispatcher`; its type says http.Agent, which it is not.
    agent: gitlabDispatcher(connection.allowHosts) as unknown as HttpAgent,
  });
  return { api, host };
}
