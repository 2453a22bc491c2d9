import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { HttpClient } from "isomorphic-git";

const MAX_REDIRECTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * isomorphic-git's HTTP client on Node's `http`/`https` modules, bound to an AbortSignal. isomorphic-git's
 * bundled Node client has no way to cancel a transfer, and a cancelled build must not keep downloading a
 * pack. Not on Node's global `fetch`: its first use loads undici and compiles its WebAssembly HTTP parser,
 * which alone adds about 13 MiB to the peak RSS of a fetch (see bench/fetch-once.ts).
 */
export function abortableHttpClient(signal: AbortSignal | undefined): HttpClient {
  return {
    async request({ url, method = "GET", headers = {}, body }) {
      // Upload-pack requests are a few KiB of wants/haves; a Content-Length is what servers expect.
      const chunks: Uint8Array[] = [];
      if (body) for await (const chunk of body) chunks.push(chunk);
      const payload = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      let current = url;
      let sent = headers;
      for (let hops = 0; ; hops++) {
        const res = await send(current, method, sent, payload, signal);
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

function send(
  url: string,
  method: string,
  headers: Record<string, string>,
  payload: Buffer | undefined,
  signal: AbortSignal | undefined,
): Promise<IncomingMessage> {
  const target = new URL(url);
  const transport = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(
      target,
      {
        method,
        headers: payload ? { ...headers, "content-length": String(payload.byteLength) } : headers,
        signal,
      },
      resolve,
    );
    req.once("error", reject);
    req.end(payload);
  });
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([k]) => !["authorization", "cookie"].includes(k.toLowerCase())),
  );
}
