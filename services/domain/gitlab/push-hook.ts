import { z } from "zod";
import { InputError } from "../../platform/errors.js";

/**
 * The fields of GitLab's Push Hook and Tag Push Hook that Slipway uses. `checkout_sha` is null on
 * deletions, whatever client libraries' types say; everything else in the payload is ignored.
 */
const pushHook = z.object({
  object_kind: z.enum(["push", "tag_push"]),
  ref: z.string().min(1).max(1024),
  before: z.string(),
  after: z.string(),
  checkout_sha: z.string().nullable().optional(),
  user_username: z.string().optional(),
  user_name: z.string().optional(),
  project: z.object({
    id: z.number(),
    git_http_url: z.string().url(),
    default_branch: z.string().nullable().optional(),
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
