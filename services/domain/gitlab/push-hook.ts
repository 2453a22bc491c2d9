import { z } from "zod";
import { InputError } from "../../platform/errors.js";
import { describeKind, forbiddenLiteralHost } from "../../platform/source-addresses.js";
import { isValidBranchName, isValidRefName } from "../builds/ref-name.js";

/** Display names only: clipped rather than refused, so a long name never costs a deploy. */
const displayName = z.string().transform((s) => s.slice(0, 255));

/**
 * The fields of GitLab's Push Hook and Tag Push Hook that Slipway uses. `checkout_sha` is null on
 * deletions, whatever client libraries' types say; everything else in the payload is ignored.
 */
const pushHook = z.object({
  object_kind: z.enum(["push", "tag_push"]),
  // Refs and the default branch decide what builds and are passed to git: git's own rules apply.
  ref: z.string().min(1).max(1024).refine(isValidRefName, "not a valid git ref name"),
  before: z.string(),
  after: z.string(),
  checkout_sha: z.string().nullable().optional(),
  user_username: displayName.optional(),
  user_name: displayName.optional(),
  project: z.object({
    id: z.number(),
    // Only http(s): the builder fetches this URL, and file:, ext:: or ssh: must never reach git. Taken
    // as sent: the URL parser would quietly drop surrounding whitespace and inner tabs or newlines.
    git_http_url: z
      .string()
      .max(2048)
      .refine((s) => !/[\s\p{Cc}]/u.test(s), "must not contain whitespace or control characters")
      .pipe(z.url({ protocol: /^https?$/ })),
    default_branch: z.string().refine(isValidBranchName, "not a valid git branch name").nullable().optional(),
    path_with_namespace: z.string().optional(),
    web_url: z.string().optional(),
  }),
});

export type PushHook = z.infer<typeof pushHook>;

export const GITLAB_EVENTS = { "Push Hook": "push", "Tag Push Hook": "tag_push" } as const;

export function parsePushHook(body: unknown): PushHook {
  const parsed = pushHook.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new InputError(
      `not a GitLab push event: ${first ? `${first.path.join(".") || "body"}: ${first.message}` : "invalid"}`,
      {
        details: { issues: parsed.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`) },
      },
    );
  }
  return parsed.data;
}

/** Where a push hook's source may come from: not Slipway itself, and public addresses unless allowed. */
export interface SourceRules {
  /** Slipway's own `host[:port]` (from its public URL), lower case. */
  readonly ownHost: string;
  /** The operator's SLIPWAY_SOURCE_ALLOW_HOSTS. */
  readonly allowHosts: readonly string[];
}

/**
 * The payload's `git_http_url`, if a build may fetch it. Refused at once: Slipway's own git remote (a
 * tool must not name another tool's repository as its source) and loopback or private addresses
 * written as such. Names are checked again where the builder connects, after DNS.
 */
export function outsideSourceUrl(raw: string, rules: SourceRules): string {
  const url = new URL(raw);
  const shown = `${url.protocol}//${url.host}${url.pathname}`;
  if (url.host.toLowerCase() === rules.ownHost) {
    throw new InputError(
      `project.git_http_url ${shown} is on this Slipway itself: a GitLab push must name the project's repository on GitLab, never a Slipway tool's repository`,
      { details: { field: "project.git_http_url" } },
    );
  }
  const kind = forbiddenLiteralHost(url, rules.allowHosts);
  if (kind !== undefined) {
    throw new InputError(
      `project.git_http_url ${shown}: ${url.host} is ${describeKind(kind)}, and Slipway fetches source only from public addresses; use the repository's public URL, or ask the operator to add ${url.host} to SLIPWAY_SOURCE_ALLOW_HOSTS`,
      { details: { field: "project.git_http_url", kind } },
    );
  }
  return raw;
}
