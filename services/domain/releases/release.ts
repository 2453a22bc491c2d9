import type { Trigger } from "../builds/build.js";

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
}
