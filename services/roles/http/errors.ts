import type { ErrorRequestHandler } from "express";
import { RateLimitedError, SlipwayError, UnavailableError, type ErrorCode } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { Readiness } from "../../ports/readiness.js";

const STATUS: Record<ErrorCode, number> = {
  invalid_input: 400,
  invalid_json: 400,
  invalid_name: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  source_fetch_failed: 422,
  source_rejected: 422,
  detect_failed: 422,
  build_failed: 422,
  export_failed: 500,
  deploy_failed: 500,
  cancelled: 409,
  stack_unavailable: 503,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

/** What a failed request is answered: status, extra headers and the `{"error": …}` body. */
export interface ErrorAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: { error: { code: ErrorCode; message: string; request_id?: string } };
}

/**
 * The one place domain errors become HTTP answers: `{"error": {"code", "message"}}`. Body-parser's
 * own errors (too large, bad JSON) are bad input, never a 5xx. A failure that `readiness` explains (Redis
 * down) is a 503 with Retry-After, not a 500: the caller did nothing wrong and should simply retry.
 * A 5xx that is not an outage is logged (with the request's logger) and its answer names the request
 * id, so an operator finds the stack from a user's report of the id alone. Express's handler below and
 * the routes served before Express (app.ts, FrontHandler) both answer through this.
 */
export function errorAnswer(
  raw: unknown,
  request: { readonly log: Logger; readonly requestId: string | undefined },
  readiness?: Readiness,
): ErrorAnswer {
  const error = raw instanceof SlipwayError ? raw : (readiness?.explain(raw) ?? raw);
  const { status, code, message } = classify(error);
  const headers: Record<string, string> = {};
  if (error instanceof RateLimitedError || error instanceof UnavailableError) {
    headers["retry-after"] = String(error.retryAfterS);
  }
  // An outage is logged once by whatever watches the dependency, not once per request it fails.
  if (status >= 500 && !(error instanceof UnavailableError)) {
    request.log.error({ err: error, code }, "request failed");
    if (request.requestId !== undefined) {
      headers["x-request-id"] = request.requestId;
      return { status, headers, body: { error: { code, message, request_id: request.requestId } } };
    }
  }
  return { status, headers, body: { error: { code, message } } };
}

export function errorHandler(logger: Logger, readiness?: Readiness): ErrorRequestHandler {
  return (raw: unknown, req, res, next) => {
    if (res.headersSent) {
      next(raw);
      return;
    }
    const request = {
      get log() {
        return req.log ?? logger;
      },
      get requestId() {
        return req.requestId;
      },
    };
    const { status, headers, body } = errorAnswer(raw, request, readiness);
    res.set(headers);
    res.status(status).json(body);
  };
}

export function classify(error: unknown): { status: number; code: ErrorCode; message: string } {
  if (error instanceof SlipwayError)
    return { status: STATUS[error.code], code: error.code, message: error.message };
  const e = error as { type?: string; status?: number; limit?: number; message?: string };
  if (e?.type === "entity.too.large") {
    return { status: 413, code: "payload_too_large", message: `request body exceeds ${e.limit} bytes` };
  }
  if (e?.type === "encoding.unsupported") {
    return {
      status: 415,
      code: "unsupported_media_type",
      message: e.message ?? "unsupported content encoding",
    };
  }
  if (e?.type === "entity.parse.failed") {
    return { status: 400, code: "invalid_json", message: "request body is not valid JSON" };
  }
  if (typeof e?.status === "number" && e.status >= 400 && e.status < 500) {
    return { status: e.status, code: "invalid_input", message: e.message ?? "bad request" };
  }
  return { status: 500, code: "internal", message: "internal error; see the server log" };
}
