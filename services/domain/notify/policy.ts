import type { RunStatus } from "../jobs/job.js";
import { InputError } from "../../platform/errors.js";

/** Toolforge's per-job `emails`: which ended runs of a job are mailed to the tool's maintainers. */
export type EmailsPolicy = "none" | "all" | "onfinish" | "onfailure";

/** How long a job's mails are batched: at most one mail per job per window. */
export const JOB_MAIL_WINDOW_MS = 3600 * 1000;
/** Log lines a message carries at most, each cut to LINE_CHARS. */
export const TAIL_LINES = 20;
const LINE_CHARS = 300;
const REASON_CHARS = 1000;

/** Run outcomes that count as a failure for `onfailure`. */
const FAILED: ReadonlySet<RunStatus> = new Set(["failed", "timeout", "lost"]);

/** The policy a job definition's `extra.emails` asks for; anything unreadable counts as `none`. */
export function emailsPolicyOf(extra: Readonly<Record<string, unknown>> | undefined): EmailsPolicy {
  const value = extra?.emails;
  return value === "all" || value === "onfinish" || value === "onfailure" ? value : "none";
}

/**
 * Whether a run that ended with `status` is mailed under `policy`. Slipway only mails ended runs, so
 * `all` (which on Toolforge also mails a start) means the same as `onfinish`. A run stopped by the
 * maintainer or skipped because the previous one still ran is never mailed.
 */
export function wantsJobMail(policy: EmailsPolicy, status: RunStatus): boolean {
  switch (policy) {
    case "none":
      return false;
    case "onfailure":
      return FAILED.has(status);
    case "all":
    case "onfinish":
      return FAILED.has(status) || status === "succeeded";
  }
}

export function isFailedRun(status: string): boolean {
  return FAILED.has(status as RunStatus);
}

// An address as it goes into an SMTP envelope: no display name, no list, no spaces or line breaks.
const ADDRESS =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/**
 * A maintainer's address, checked and lower-cased; InputError says what is wrong. RFC 5321 lets a local
 * part be case-sensitive, but no mail provider a maintainer uses treats it so: kept as typed,
 * "Ada@example.org" and "ada@example.org" were two recipients and one person got every mail twice.
 */
export function validateAddress(raw: unknown): string {
  const text = typeof raw === "string" ? raw.trim() : "";
  if (text.length > 254 || !ADDRESS.test(text)) {
    throw new InputError(
      `invalid email address "${String(raw).slice(0, 80)}": give one plain address such as maintainer@example.org`,
      { details: { field: "address" } },
    );
  }
  return text.toLowerCase();
}

/** An outgoing webhook URL: http(s) only, no credentials in it (they would show in `notify show`). */
export function validateWebhookUrl(raw: unknown): string {
  let url: URL | undefined;
  try {
    url = new URL(String(raw));
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password) {
    throw new InputError(
      `invalid webhook URL "${String(raw).slice(0, 120)}": give an http(s) URL without credentials`,
      { details: { field: "url" } },
    );
  }
  return url.toString();
}

// Slipway's own secrets (tool tokens, webhook secrets, redeploy tokens, admin and builder secrets) and
// GitLab tokens: recognisable by their prefixes wherever they show up in a log line.
const TOKEN = /\b(?:sl[abnprtw]_[A-Za-z0-9_-]{16,}|glpat-[A-Za-z0-9_-]{8,}|gldt-[A-Za-z0-9_-]{8,})/g;

/**
 * Takes every secret out of text a message carries: the values of the tool's environment variables (of
 * four characters or more, so that `1` or `true` do not blank out the log) and tokens by their prefix.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first: a value that contains another is replaced whole.
  for (const s of [...secrets].filter((v) => v.length >= 4).sort((a, b) => b.length - a.length))
    out = out.split(s).join("[redacted]");
  return out.replace(TOKEN, "[redacted]");
}

/** The last TAIL_LINES lines, each bounded, secrets taken out. */
export function tailOf(lines: readonly string[] | undefined, secrets: readonly string[]): string[] {
  return (lines ?? []).slice(-TAIL_LINES).map((l) => cut(redact(l, secrets), LINE_CHARS));
}

export function reasonOf(reason: string | null | undefined, secrets: readonly string[]): string {
  return cut(redact(reason ?? "no reason recorded", secrets), REASON_CHARS);
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
