import type { Trigger } from "../builds/build.js";
import type { ComponentsConfig } from "../config/index.js";

export type ReleaseStatus = "deploying" | "live" | "failed" | "superseded";

/** Everything needed to run a build again without rebuilding it. */
export interface Release {
  readonly id: string;
  readonly tool: string;
  readonly component: string;
  readonly build_id: string;
  readonly commit: string;
  readonly image: string;
  readonly image_digest: string;
  readonly trigger: Trigger;
  readonly status: ReleaseStatus;
  readonly reason?: string | undefined;
  readonly created_at: string;
  readonly finished_at?: string | undefined;
  /**
   * The components config of the commit (slipway.yaml / toolforge.yaml, or the one derived from the
   * Procfile), every default applied. Absent on releases made before Slipway read configs: then the
   * webservice runs with the built-in defaults.
   */
  readonly config?: ComponentsConfig | undefined;
  /** Process types the image has (`/cnb/process/<type>`); `release` among them runs before the rollout. */
  readonly processes?: readonly string[] | undefined;
  /** For a rollback: the release whose image and config this one runs again. */
  readonly rollback_of?: string | undefined;
  /** For a restart (`webservice restart|start`, an env var change): the release it deploys again. */
  readonly restart_of?: string | undefined;
  /** What the last health probe saw (`HTTP 500 from /healthz`, `ECONNREFUSED`, …). */
  readonly last_probe?: string | undefined;
  /** Last lines of the failing process (release phase or web) when the release failed. */
  readonly log_tail?: readonly string[] | undefined;
  /** Set when image retention deleted the image from the registry: the release cannot be rolled back to. */
  readonly image_deleted_at?: string | undefined;
}

/** Trigger kinds of releases made without a build of their own: they deploy an earlier release's image. */
const WITHOUT_BUILD: ReadonlySet<Trigger["kind"]> = new Set(["rollback", "envvars", "restart"]);

/**
 * Where a release's deploy is told: a push's release continues its build's log (`build logs -f` follows
 * the whole push); a rollback or restart has a log of its own under its release id, so an old build's
 * log is not appended to long after it ended.
 */
export function deployLogId(release: Pick<Release, "id" | "build_id" | "trigger">): string {
  return WITHOUT_BUILD.has(release.trigger.kind) ? release.id : release.build_id;
}
