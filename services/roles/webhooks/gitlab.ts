import type { Router } from "express";
import { GITLAB_EVENTS, parsePushHook } from "../../domain/gitlab/push-hook.js";
import { forgeWebhooks, type ForgeAdapter, type WebhookDeps } from "./forge-hooks.js";

/**
 * GitLab's Push Hook and Tag Push Hook. GitLab sends the webhook secret itself in X-Gitlab-Token and an
 * Idempotency-Key that stays the same when it retries a delivery.
 */
export const gitlabForge: ForgeAdapter = {
  route: "gitlab",
  label: "GitLab",
  auth: { kind: "token", header: "x-gitlab-token" },
  eventHeader: "x-gitlab-event",
  pushEvents: new Set(Object.keys(GITLAB_EVENTS)),
  deliveryHeader: "idempotency-key",
  parse(_event, body) {
    const hook = parsePushHook(body);
    return {
      ref: hook.ref,
      commit: hook.checkout_sha ?? (hook.after || null),
      sourceUrl: hook.project.git_http_url,
      defaultBranch: hook.project.default_branch ?? undefined,
      trigger: {
        kind: hook.object_kind === "tag_push" ? "gitlab_tag" : "gitlab_push",
        ref: hook.ref,
        actor: hook.user_username ?? hook.user_name,
      },
    };
  },
};

/** GitLab's receiver alone (`POST /hooks/gitlab[/<tool>]`): for tests and callers that need no other forge. */
export function gitlabWebhooks(deps: WebhookDeps): Router {
  return forgeWebhooks(deps, [gitlabForge]);
}
