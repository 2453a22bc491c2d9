import type { Logger } from "../../platform/logger.js";
import type { BuilderRegistry } from "../../ports/builders.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { BuildSandboxes } from "../../ports/sandbox.js";
import type { BuildStore } from "../../ports/store.js";
import { TERMINAL_STATUSES, type Build } from "../builds/build.js";
import type { Enqueuer } from "../../ports/queue.js";

/**
 * How many times a build whose builder stopped mid-build starts again from the beginning. After that
 * it fails: a build that brings its builder down twice is likely the cause, not the victim.
 */
export const MAX_BUILDER_RESTARTS = 1;

/**
 * Builds whose builder process is gone (kill -9, a crash, a lost machine) and that nobody would ever
 * finish: the record says `running`, the commit stays claimed, the sandbox container idles forever.
 * `recover` takes such a build over; `sweep` finds them (every builder's heartbeat in the
 * BuilderRegistry) and queues a job for each, so the decision is made in one place, the pipeline.
 */
export class BuildRecovery {
  constructor(
    private readonly deps: {
      readonly store: BuildStore;
      readonly logs: BuildLogs;
      readonly builders: BuilderRegistry;
      readonly sandboxes: BuildSandboxes;
      readonly queue: Enqueuer;
      readonly logger: Logger;
    },
  ) {}

  /** True when the running build's builder is gone (or was never recorded: started by an older Slipway). */
  async orphaned(build: Build): Promise<boolean> {
    return build.builder === undefined || !(await this.deps.builders.alive(build.builder));
  }

  /**
   * A running build whose builder is gone. The first time it goes back to `pending` and the caller
   * builds it again from the fetch: the same commit, every step starts from a clean work dir and the
   * export is reproducible, so a re-run is safe. After MAX_BUILDER_RESTARTS it fails with
   * `builder restarted during phase X` and frees its commit. Either way the dead builder's sandbox is
   * removed. Undefined when another process took the build over first (or it is no longer orphaned).
   */
  async recover(build: Build): Promise<Build | undefined> {
    const { store, logs } = this.deps;
    const phase = build.phase ?? "fetch";
    const restarts = build.restarts ?? 0;
    const gone = `builder restarted during phase ${phase}`;
    const rerun = restarts < MAX_BUILDER_RESTARTS;
    const next = await store.takeOverBuild(
      build.id,
      build.builder,
      rerun
        ? {
            status: "pending",
            phase: "queued",
            reason: `re-running from the start: ${gone}`,
            restarts: restarts + 1,
            builder: undefined,
          }
        : {
            status: "failure",
            phase,
            reason: `${gone}; it had been re-run ${restarts} time(s) already, so it is not retried again — run \`build start\` to build the commit again`,
            finished_at: new Date().toISOString(),
          },
    );
    if (!next) return undefined;
    const log = this.deps.logger.child({ tool: build.tool, buildId: build.id, sha: build.commit });
    await this.deps.sandboxes
      .remove(build.id, build.builder)
      .catch((e: unknown) => log.warn({ err: e }, "the dead builder's sandbox stays"));
    await logs
      .append(
        build.id,
        rerun
          ? `===> RESTARTING: the ${gone}; building ${build.commit} again from the start`
          : `===> FAILED in ${phase}: ${next.reason ?? gone}`,
      )
      .catch(() => undefined);
    // A failure here is the machine's, not the commit's: `build start` and the hooks may build it again.
    if (!rerun) await store.releaseCommit(build.tool, build.component, build.commit);
    log.warn({ phase, builder: build.builder, rerun }, "recovered a build whose builder is gone");
    return next;
  }

  /**
   * Finds the builds of every builder whose heartbeat expired and queues a recovery job for each that
   * still runs on it (job ids `<build>-r<n>`, so two sweeps queue it once). The job's pipeline run
   * calls `recover`. A queued job survives a crash of this sweep; the dead builder is forgotten after.
   */
  async sweep(): Promise<number> {
    const { store, builders, queue } = this.deps;
    let found = 0;
    for (const { builder, builds } of await builders.orphans()) {
      for (const id of builds) {
        const build = await store.getBuild(id);
        if (build?.status !== "running" || build.builder !== builder) continue;
        found++;
        await queue.enqueue(
          "build",
          { build_id: id, tool: build.tool },
          `${id}-r${(build.restarts ?? 0) + 1}`,
        );
      }
      await builders.forget(builder);
    }
    if (found > 0) await this.sweepSandboxes();
    return found;
  }

  /**
   * Removes this server's sandboxes whose build no longer runs in them: ended, waiting again, or
   * running on another builder than the one that started the sandbox. A sandbox of a build that still
   * runs on its (dead) builder is left to `recover`.
   */
  async sweepSandboxes(): Promise<void> {
    for (const found of await this.deps.sandboxes.list()) {
      const build = await this.deps.store.getBuild(found.buildId);
      // A deploying build is done with its sandbox: only its release runs now.
      const ended = !build || TERMINAL_STATUSES.has(build.status) || build.status === "deploying";
      // Without a builder label (started before builders were recorded) only an ended build's is known stale.
      const stale =
        ended ||
        (found.builder !== undefined && (build.status === "pending" || build.builder !== found.builder));
      if (stale) await this.deps.sandboxes.remove(found.buildId, found.builder);
    }
  }
}
