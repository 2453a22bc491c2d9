/**
 * Domain errors. Each carries a stable `code` that the API returns and tests assert on, and a message a
 * tool maintainer can act on. They are mapped to HTTP status in exactly one place
 * (`roles/http/errors.ts`); workers map them to retry or fail-now.
 */
export type ErrorCode =
  | "invalid_input"
  | "invalid_json"
  | "invalid_name"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "source_fetch_failed"
  | "source_rejected"
  | "detect_failed"
  | "build_failed"
  | "export_failed"
  | "deploy_failed"
  | "cancelled"
  | "stack_unavailable"
  | "rate_limited"
  | "unavailable"
  | "internal";

export class SlipwayError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options?.details;
  }
  readonly details: Record<string, unknown> | undefined;
}

/** The caller sent something we cannot accept; retrying the same input cannot help. */
export class InputError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super("invalid_input", message, options);
  }
}

export class NotFoundError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("not_found", message, options);
  }
}

export class ConflictError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super("conflict", message, options);
  }
}

export class AuthError extends SlipwayError {
  constructor(message = "missing or invalid credentials") {
    super("unauthorized", message);
  }
}

export class ForbiddenError extends SlipwayError {
  constructor(message = "this credential may not act on that tool") {
    super("forbidden", message);
  }
}

/**
 * A build or deploy step failed for a reason inside the tool's repository or the buildpacks: the
 * message names the phase (and buildpack) and `details.log_tail` carries the last log lines.
 */
export class PipelineError extends SlipwayError {}

/** Too many requests from one caller or for one tool; `retryAfterS` says when to try again. */
export class RateLimitedError extends SlipwayError {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super("rate_limited", message, { details: { retry_after_s: retryAfterS } });
  }
}

/** Something outside Slipway (registry, podman, Redis) failed; a retry may succeed. */
export class TransientError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }, code: ErrorCode = "internal") {
    super(code, message, options);
  }
}

/**
 * Slipway cannot serve the request right now because a service it depends on (Redis) is down; nothing
 * was done, and the same request sent again after `retryAfterS` will be handled.
 */
export class UnavailableError extends TransientError {
  constructor(
    message: string,
    readonly retryAfterS: number,
    options?: { cause?: unknown },
  ) {
    super(message, options, "unavailable");
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
