import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { HttpClient } from "isomorphic-git";
import { describeKind, forbiddenLiteralHost, isAllowedHost } from "../../platform/source-addresses.js";
import { publicOnlyLookup, refusal, type RefusalMessage } from "../net/public-only.js";

const MAX_REDIRECTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * isomorphic-git's HTTP client on Node's `http`/`https` modules, bound to an AbortSignal. isomorphic-git's
 * bundled Node client has no way to cancel a transfer, and a cancelled build must not keep downloading a
 * pack. Not on Node's global `fetch`: its first use loads undici and compiles its WebAssembly HTTP parser,
 * which alone adds about 13 MiB to the peak RSS of a fetch (see bench/fetch-once.ts).
 */
export function abortableHttpClient(
  signal: AbortSignal | undefined,
  /** Hosts that may be on loopback or private addresses (`SLIPWAY_SOURCE_ALLOW_HOSTS`); see `send`. */
  allowHosts: readonly string[],
): HttpClient {
  return {
    async request({ url, method = "GET", headers = {}, body }) {
      // Upload-pack requests are a few KiB of wants/haves; a Content-Length is what servers expect.
      const chunks: Uint8Array[] = [];
      if (body) for await (const chunk of body) chunks.push(chunk);
      const payload = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      let current = url;
      let sent = headers;
      for (let hops = 0; ; hops++) {
        const res = await send(current, method, sent, payload, signal, allowHosts);
        const location = res.headers.location;
        if (REDIRECTS.has(res.statusCode ?? 0) && location) {
          res.resume();
          if (hops >= MAX_REDIRECTS) throw new Error(`too many redirects fetching ${url}`);
          const next = new URL(location, current);
          // As fetch does: credentials go only to the origin they were given for.
          if (next.origin !== new URL(current).origin) sent = withoutCredentials(sent);
          current = next.toString();
          // The same request again, body included, whatever the status: isomorphic-git ignores the final
          // URL and posts to the original one, which a renamed project on GitLab redirects too, and
          // upload-pack turned into a GET (as fetch would turn a 301/302 POST) is only a 400.
          continue;
        }
        // isomorphic-git does not always read a response to its end. The build's signal stays attached
        // to it, so cancelling the build later errors the stream with no one listening, which would
        // crash the server. A reader still gets errors through the iterator.
        res.on("error", () => undefined);
        return {
          url: current,
          method,
          statusCode: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? "",
          headers: Object.fromEntries(
            Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]),
          ),
          body: res[Symbol.asyncIterator]() as AsyncIterableIterator<Uint8Array>,
        };
      }
    },
  };
}

/**
 * One request, to a public address only unless its host is allow-listed. The check is on the address
 * actually connected to (the `lookup` hook runs for every new connection, after DNS), so a name that
 * resolves to loopback, or re-resolves there after an earlier check (DNS rebinding), is refused too;
 * IP literals skip DNS and are checked here. Every redirect hop comes through here again.
 */
function send(
  url: string,
  method: string,
  headers: Record<string, string>,
  payload: Buffer | undefined,
  signal: AbortSignal | undefined,
  allowHosts: readonly string[],
): Promise<IncomingMessage> {
  const target = new URL(url);
  const transport = target.protocol === "https:" ? https : http;
  const literal = forbiddenLiteralHost(target, allowHosts);
  if (literal !== undefined)
    return Promise.reject(refusal(target.host, target.hostname, literal, sourceRefusal));
  return new Promise((resolve, reject) => {
    const req = transport.request(
      target,
      {
        method,
        headers: payload ? { ...headers, "content-length": String(payload.byteLength) } : headers,
        signal,
        ...(isAllowedHost(target, allowHosts)
          ? {}
          : { lookup: publicOnlyLookup(target.host, sourceRefusal) }),
      },
      resolve,
    );
    req.once("error", reject);
    req.end(payload);
  });
}

/** The message for a source host on an address that is not public. */
const sourceRefusal: RefusalMessage = (host, address, kind) => {
  const at = address === new URL(`http://${host}`).hostname ? "" : ` (it resolves to ${address})`;
  return `${host}${at} is ${describeKind(kind)}: Slipway fetches source only from public addresses. Use the repository's public URL, or ask the operator to add ${host} to SLIPWAY_SOURCE_ALLOW_HOSTS`;
};

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([k]) => !["authorization", "cookie"].includes(k.toLowerCase())),
  );
}
