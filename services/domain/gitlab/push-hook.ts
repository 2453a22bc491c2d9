import { z } from "zod";
import { InputError } from "../../platform/errors.js";
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
    // Only http(s): the builder fetches this URL, and file:, ext:: or ssh: must never reach git.
    git_http_url: z.url({ protocol: /^https?$/ }).max(2048),
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
