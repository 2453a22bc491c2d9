import { TERMINAL_STATUSES, type Build } from "../builds/build.js";
import { ConflictError, NotFoundError } from "../../platform/errors.js";
import type { BuildSandboxes } from "../../ports/sandbox.js";
import type { BuildStore } from "../../ports/store.js";
import type { Enqueuer } from "../../ports/queue.js";

/**
 * Cancelling builds. A waiting build is taken off the queue; a running one is marked cancelled and its
 * sandbox container removed here, so nothing of it keeps running even when its builder died with it
 * (a live builder, which watches the build's status, then ends the build as cancelled).
 */
export class BuildControl {
  constructor(
    private readonly store: BuildStore,
    private readonly queue: Enqueuer,
    /** Absent where no build runs on this machine's podman (API tests). */
    private readonly sandboxes?: BuildSandboxes,
  ) {}

  async cancel(id: string): Promise<Build> {
    const build = await this.store.getBuild(id);
    if (!build) throw new NotFoundError(`no build ${id}`);
    if (TERMINAL_STATUSES.has(build.status)) {
      throw new ConflictError(`build ${id} already ended (${build.status})`);
    }
    if (build.status === "deploying") {
      // Stopping a rollout halfway would leave neither release clearly serving; it ends by itself.
      throw new ConflictError(
        `build ${id} is deploying release ${build.release_id ?? "?"} and cannot be cancelled; wait for its outcome (build logs ${id} -f), then roll back if needed`,
      );
    }
    await this.queue.removeWaiting("build", id);
    const updated = await this.store.updateBuild(id, {
      status: "cancelled",
      reason: "cancelled by request",
      finished_at: new Date().toISOString(),
    });
    await this.store.releaseCommit(build.tool, build.component, build.commit);
    // The build has ended either way; a sandbox podman could not remove now goes at the next
    // builder start (BuildRecovery.sweepSandboxes removes the sandboxes of ended builds).
    await this.sandboxes?.remove(id).catch(() => undefined);
    return updated;
  }
}
