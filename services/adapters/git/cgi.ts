import { spawn } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { SlipwayError, TransientError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";

export interface CgiHead {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  /** Bytes after the blank line: the start of the body. */
  readonly rest: Buffer;
}

/** A CGI script that writes more header than this before its body is broken, not slow. */
const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Parses the header block a CGI script writes before its body (RFC 3875 §6): `Name: value` lines ended by
 * an empty line, LF or CRLF, with `Status: 404 Not Found` giving the HTTP status. Returns `undefined`
 * while the blank line has not arrived yet.
 */
export function parseCgiHead(buffer: Buffer): CgiHead | undefined {
  const crlf = buffer.indexOf("\r\n\r\n");
  const lf = buffer.indexOf("\n\n");
  let end: number;
  let sepLength: number;
  if (crlf !== -1 && (lf === -1 || crlf < lf)) [end, sepLength] = [crlf, 4];
  else if (lf !== -1) [end, sepLength] = [lf, 2];
  else {
    if (buffer.length > MAX_HEAD_BYTES) throw new TransientError("CGI response header is too long");
    return undefined;
  }
  let status = 200;
  const headers: [string, string][] = [];
  for (const raw of buffer.subarray(0, end).toString("latin1").split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new TransientError(`malformed CGI header line "${line.slice(0, 80)}"`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === "status") {
      const code = Number.parseInt(value, 10);
      if (!Number.isInteger(code) || code < 100 || code > 599) {
        throw new TransientError(`malformed CGI Status header "${value.slice(0, 80)}"`);
      }
      status = code;
    } else headers.push([name, value]);
  }
  // A CGI "local redirect" has no Status; HTTP wants a 302 for it (RFC 3875 §6.2.4).
  if (status === 200 && headers.some(([n]) => n.toLowerCase() === "location")) status = 302;
  return { status, headers, rest: buffer.subarray(end + sepLength) };
}

/**
 * Runs a CGI program for one request, streaming the request body into it and its output back, so a
 * large push or clone never sits in this process's memory. Resolves when the response is complete.
 */
export async function serveCgi(
  req: IncomingMessage,
  res: ServerResponse,
  program: string,
  env: Record<string, string>,
  logger: Logger,
): Promise<void> {
  const child = spawn(program, [], { env, stdio: ["pipe", "pipe", "pipe"] });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", (e) =>
      reject(new TransientError(`cannot run ${program}: ${e.message}`, { cause: e })),
    );
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (s: string) => {
    stderr = (stderr + s).slice(-4096);
  });
  const exited = new Promise<number>((resolve) => child.once("close", (code) => resolve(code ?? 1)));
  // The client went away: stop the git process instead of letting it run to completion.
  const onAbort = (): void => {
    if (!res.writableFinished) child.kill("SIGTERM");
  };
  res.once("close", onAbort);

  try {
    await spawned;
    // The child may stop reading early (it answered with an error); that is not our failure.
    const feeding = pipeline(req, child.stdin).catch((e: unknown) => {
      logger.debug({ err: e instanceof Error ? e.message : String(e) }, "cgi request body not fully read");
    });

    let head: CgiHead | undefined;
    let pending = Buffer.alloc(0);
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
      if (head) {
        if (!res.write(chunk)) await new Promise((r) => res.once("drain", r));
        continue;
      }
      pending = Buffer.concat([pending, chunk]);
      head = parseCgiHead(pending);
      if (head) {
        res.statusCode = head.status;
        for (const [name, value] of head.headers) res.appendHeader(name, value);
        if (head.rest.length > 0) res.write(head.rest);
      }
    }
    const code = await exited;
    await feeding;
    if (!head) {
      throw new SlipwayError(
        "internal",
        `git http-backend failed (exit ${code}): ${stderr.trim().slice(-500)}`,
      );
    }
    if (code !== 0 || head.status >= 500)
      logger.warn({ code, status: head.status, stderr }, "git http-backend failed");
    res.end();
  } finally {
    res.off("close", onAbort);
    if (child.exitCode === null) child.kill("SIGTERM");
  }
}
