import type { ComponentsConfig } from "../config/index.js";

/** Where a build came from; kept on the build and on the release it becomes. */
export interface Trigger {
  /**
   * `rollback`: a release made from an earlier release's image, without a build. `envvars`: the image
   * about to run, released again because an environment variable changed (its processes restart).
   * `forge_push`: a webhook of a forge that has no kind of its own here (see roles/webhooks/forges.ts).
   */
  readonly kind:
    | "git_push"
    | "gitlab_push"
    | "gitlab_tag"
    | "forge_push"
    | "redeploy"
    | "api"
    | "rollback"
    | "envvars"
    | "restart";
  readonly ref: string;
  /** GitLab user name, or "token" for the redeploy hook and API. */
  readonly actor?: string | undefined;
}

/**
 * pending → running → deploying → success | failure | superseded. A build ends with its push: `success`
 * means its release is live, a failed rollout is a `failure` in phase `deploy`. Cancelled and superseded
 * can also end a build before it deploys.
 */
export type BuildStatus =
  "pending" | "running" | "deploying" | "success" | "failure" | "cancelled" | "superseded";

export const TERMINAL_STATUSES: ReadonlySet<BuildStatus> = new Set([
  "success",
  "failure",
  "cancelled",
  "superseded",
]);

/** The phases a build goes through, in order; a failure names the one it stopped in. */
export type Phase = "queued" | "fetch" | "config" | "detect" | "restore" | "build" | "export" | "deploy";

export interface Build {
  readonly id: string;
  readonly tool: string;
  readonly component: string;
  readonly commit: string;
  readonly ref: string;
  readonly source_url: string;
  readonly trigger: Trigger;
  readonly status: BuildStatus;
  /** Why the build is in its status, in words a maintainer can act on. */
  readonly reason?: string | undefined;
  readonly phase?: Phase | undefined;
  /** The buildpack that failed, when one did. */
  readonly buildpack?: string | undefined;
  readonly log_tail?: readonly string[] | undefined;
  readonly image?: string | undefined;
  readonly image_digest?: string | undefined;
  readonly release_id?: string | undefined;
  readonly created_at: string;
  readonly started_at?: string | undefined;
  readonly finished_at?: string | undefined;
  readonly no_cache?: boolean | undefined;
  /** The builder process running it (BuilderRegistry id); set while it runs. */
  readonly builder?: string | undefined;
  /** How many times it was started again because its builder stopped mid-build. */
  readonly restarts?: number | undefined;
  /** The components config the build read (or derived from the Procfile); its release keeps it too. */
  readonly config?: ComponentsConfig | undefined;
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

export function isCommitSha(value: string): boolean {
  return SHA.test(value);
}

/** GitLab marks a deleted branch or tag with an all-zero `after` (40 zeros, or 64 for SHA-256 repos). */
export function isBlankSha(value: string): boolean {
  return /^0{40}(0{24})?$/.test(value);
}
