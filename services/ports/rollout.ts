import type { Release } from "../domain/releases/release.js";
import type { Logger } from "../platform/logger.js";
import type { RunOnceResult } from "./runtime.js";
import type { Route } from "./store.js";

/** Appends a line to the deploy's log (the build's, or the release's own); never throws. */
export type Say = (line: string) => Promise<void>;

/**
 * The runtime-specific half of a deploy (podman locally, Kubernetes in a cluster). The one deploy
 * routine (domain/releases/deployer.ts) owns everything a user reads the same way on both: the log's
 * markers, the release phase's verdict, the check that a newer release is not overtaken, the route,
 * the statuses and the outcome. A Rollout only starts, waits for and switches the processes.
 */
export interface Rollout {
  /** Appended to the `===> DEPLOYING release …` line: where it goes (` to Kubernetes namespace …`). */
  where(release: Release): string;
  /** What the release phase is called in its first log line (`release process as a Kubernetes Job`). */
  readonly releasePhaseLabel: string;
  /**
   * Everything that can be decided before anything runs, for one release: a plan of its processes
   * (podman: the web replicas; Kubernetes: the rendered objects, checked against the namespace's
   * limits). Throws a PipelineError for a release the runtime would refuse; nothing has run then.
   * `vars` are the tool's environment variables, without PORT (each runtime sets PORT itself).
   */
  plan(release: Release, vars: Readonly<Record<string, string>>, say: Say): Promise<RolloutPlan>;
  /**
   * Brings the live release's missing processes back (after a reboot removed them, or they crashed):
   * how many replicas are still down (the route follows through `commit`). Absent where the
   * runtime keeps them running itself (Kubernetes).
   */
  restore?(
    release: Release,
    route: Route,
    vars: Readonly<Record<string, string>>,
    log: Logger,
    /** Records the new route if the release is still live; false: a rollout moved on meanwhile. */
    commit: (next: Route) => Promise<boolean>,
  ): Promise<{ readonly down: number }>;
}

/** One release's rollout on one runtime; made by {@link Rollout.plan}, used once. */
export interface RolloutPlan {
  /**
   * Runs the Procfile `release` process once, in the new image with the web process's environment.
   * Output lines go to `onLine` as the runtime delivers them (podman: as they come; Kubernetes: when
   * the Job has ended). The verdict on the result is the deploy routine's.
   */
  releasePhase(timeoutS: number, onLine: (line: string) => void): Promise<RunOnceResult>;
  /**
   * Starts the release's processes beside the ones serving and resolves once every one is ready, with
   * what the last readiness check saw (for `releases`). Throws a PipelineError (details: `log_tail`,
   * `last_probe`) when one never gets ready; its message's first line may say what keeps serving.
   */
  start(signal: AbortSignal): Promise<{ readonly probe?: string | undefined }>;
  /**
   * Makes the release what the runtime serves (Kubernetes: applies the whole set with prune) and
   * returns the route to record. Called only after {@link start}, and only while no newer release is live.
   */
  switchOver(): Promise<Route>;
  /** After the route was switched: stops what the previous release left running (podman, after a drain). */
  retire(): Promise<void>;
  /** Undoes {@link start} (a failure, or a newer release went live first); safe to call at any point. */
  abandon(): Promise<void>;
}
