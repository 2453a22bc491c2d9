import { GitbeakerRequestError, GitbeakerRetryError, GitbeakerTimeoutError } from "@gitbeaker/rest";
import { InputError, SlipwayError, TransientError } from "../../platform/errors.js";
import type { CommitState, ReportFailureCode } from "../../ports/forge.js";

/**
 * What a failed GitLab call means for Slipway. Built from the status code and GitLab's own message only:
 * gitbeaker's error keeps the Request, whose headers hold the token, so that error is never logged,
 * returned or kept as a `cause`.
 */
export type GitlabFailure =
  | {
      readonly kind: "unauthorized" | "forbidden" | "not_found" | "rejected";
      readonly status: number;
      readonly detail: string;
    }
  /** The instance's address is not a public one and not allow-listed: no request was sent. */
  | { readonly kind: "address"; readonly status: undefined; readonly detail: string }
  | { readonly kind: "transition"; readonly status: 400; readonly detail: string; readonly from: string }
  | { readonly kind: "transient"; readonly status: number | undefined; readonly detail: string };

const TRANSITION = /Cannot transition status via :\w+ from :(\w+)/;

export function classifyGitlabError(error: unknown): GitlabFailure {
  if (error instanceof GitbeakerRequestError) {
    const status = error.cause?.response.status ?? 0;
    const detail = (error.cause?.description ?? error.message).slice(0, 300);
    if (status === 401) return { kind: "unauthorized", status, detail };
    if (status === 403) return { kind: "forbidden", status, detail };
    if (status === 404) return { kind: "not_found", status, detail };
    const transition = status === 400 ? TRANSITION.exec(detail) : null;
    if (transition?.[1] !== undefined)
      return { kind: "transition", status: 400, detail, from: transition[1] };
    if (status === 408 || status === 429 || status >= 500) return { kind: "transient", status, detail };
    return { kind: "rejected", status, detail };
  }
  if (error instanceof GitbeakerTimeoutError)
    return { kind: "transient", status: undefined, detail: "request timed out" };
  if (error instanceof GitbeakerRetryError)
    return { kind: "transient", status: undefined, detail: error.message };
  // fetch() rejects with TypeError("fetch failed") and the socket error as cause: refused, reset, DNS.
  if (error instanceof Error && error.cause instanceof SlipwayError && error.cause.code === "source_rejected")
    return { kind: "address", status: undefined, detail: error.cause.message };
  const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : "";
  const message = error instanceof Error ? error.message : String(error);
  return { kind: "transient", status: undefined, detail: `${message}${cause}`.slice(0, 300) };
}

export function isTransient(error: unknown): boolean {
  return classifyGitlabError(error).kind === "transient";
}

/** Where a message should point the maintainer. */
export interface CallContext {
  readonly host: string;
  readonly project: string | number;
  /** What Slipway was doing, as a verb phrase: "register the webhook". */
  readonly action: string;
  /** The role the action needs on the project. */
  readonly role: "Reporter" | "Developer" | "Maintainer";
}

/** A message that says what to fix; never contains the token. */
export function describeFailure(failure: GitlabFailure, ctx: CallContext, attempts = 1): string {
  const where = `GitLab at ${ctx.host}`;
  switch (failure.kind) {
    case "unauthorized":
      return `${where} rejected the access token (401) trying to ${ctx.action}: it is wrong, expired or revoked. Create a project access token with the "api" scope and link the tool again.`;
    case "forbidden":
      return `${where} refused to let the token ${ctx.action} on project ${ctx.project} (403${failure.detail === "" ? "" : `: ${failure.detail}`}): the token needs the "api" scope and at least the ${ctx.role} role on the project.`;
    case "not_found":
      return `${where} found nothing at project ${ctx.project} trying to ${ctx.action} (404: ${failure.detail}): check the project id or path (group/project), and that the token's user is a member of the project.`;
    case "address":
      return failure.detail;
    case "transition":
      return `${where} kept the commit status at "${failure.from}" (${failure.detail}).`;
    case "rejected":
      return `${where} refused to ${ctx.action} on project ${ctx.project} (${failure.status}: ${failure.detail}).`;
    case "transient":
      return `${where} could not be reached to ${ctx.action} after ${attempts} ${attempts === 1 ? "try" : "tries"} (${failure.status === undefined ? failure.detail : `HTTP ${failure.status}: ${failure.detail}`}); try again later.`;
  }
}

/** The domain error a ForgeLink call throws for a failure. */
export function toSlipwayError(failure: GitlabFailure, ctx: CallContext, attempts: number): SlipwayError {
  const message = describeFailure(failure, ctx, attempts);
  // A sanitised cause: the status and GitLab's words, not gitbeaker's error with the request in it.
  const cause = new Error(`GitLab ${failure.status ?? "network"}: ${failure.detail}`);
  switch (failure.kind) {
    case "unauthorized":
    case "forbidden":
      return new InputError(message, { cause, details: { field: "token", gitlab_status: failure.status } });
    case "not_found":
      return new InputError(message, { cause, details: { field: "project", gitlab_status: failure.status } });
    case "transition":
    case "rejected":
      return new InputError(message, { cause, details: { gitlab_status: failure.status } });
    case "address":
      return new InputError(message, { details: { field: "url" } });
    case "transient":
      return new TransientError(message, { cause });
  }
}

/** The failure code a CommitStatusReporter returns. */
export function reportCode(failure: GitlabFailure): ReportFailureCode {
  switch (failure.kind) {
    case "unauthorized":
    case "forbidden":
    case "not_found":
    case "rejected":
      return failure.kind;
    case "transition":
    case "address":
      return "rejected";
    case "transient":
      return "unavailable";
  }
}

/** GitLab names states by the events that reach them; a transition error names the current state. */
export function isSameState(failure: GitlabFailure, state: CommitState): boolean {
  return failure.kind === "transition" && failure.from === state;
}
