import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { HttpClient } from "isomorphic-git";

const MAX_REDIRECTS = 10;

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
      let payload = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      let current = url;
      let verb = method;
      for (let hops = 0; ; hops++) {
        const res = await send(current, verb, headers, payload, signal);
        const location = res.headers.location;
        if (res.statusCode && res.statusCode >= 301 && res.statusCode <= 308 && location) {
          res.resume();
          if (hops >= MAX_REDIRECTS) throw new Error(`too many redirects fetching ${url}`);
          current = new URL(location, current).toString();
          // As browsers and fetch do: 307/308 repeat the request, the others turn a POST into a GET.
          if (res.statusCode !== 307 && res.statusCode !== 308 && verb === "POST") {
            verb = "GET";
            payload = undefined;
          }
          continue;
        }
        // isomorphic-git does not always read a response to its end. The build's signal stays attached
        // to it, so cancelling the build later errors the stream with no one listening, which would
        // crash the server. A reader still gets errors through the iterator.
        res.on("error", () => undefined);
        return {
          url: current,
          method: verb,
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
