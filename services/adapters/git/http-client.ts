import { Readable } from "node:stream";
import type { HttpClient } from "isomorphic-git";

/**
 * isomorphic-git's HTTP client on Node's own `fetch`, bound to an AbortSignal. isomorphic-git's bundled
 * Node client has no way to cancel a transfer, and a cancelled build must not keep downloading a pack.
 */
export function abortableHttpClient(signal: AbortSignal | undefined): HttpClient {
  return {
    async request({ url, method = "GET", headers = {}, body }) {
      // Upload-pack requests are a few KiB of wants/haves; a Content-Length is what servers expect.
      const chunks: Uint8Array[] = [];
      if (body) for await (const chunk of body) chunks.push(chunk);
      const res = await fetch(url, {
        method,
        headers,
        body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
        signal: signal ?? null,
        redirect: "follow",
      });
      const stream = res.body ? Readable.fromWeb(res.body) : undefined;
      // isomorphic-git does not always read a response to its end. The build's signal stays attached
      // to it, so cancelling the build later errors the stream with no one listening, which would
      // crash the server. A reader still gets errors through the iterator.
      stream?.on("error", () => undefined);
      const responseBody = stream?.[Symbol.asyncIterator]();
      return {
        url: res.url,
        method,
        statusCode: res.status,
        statusMessage: res.statusText,
        headers: Object.fromEntries(res.headers.entries()),
        body: responseBody as AsyncIterableIterator<Uint8Array> | undefined,
      };
    },
  };
}
