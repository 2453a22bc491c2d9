import { TERMINAL_STATUSES, type Build } from "../builds/build.js";
import { ConflictError, NotFoundError, SlipwayError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { BuildCanceller } from "../../ports/build-canceller.js";
import type { StateStore } from "../../ports/store.js";

/**
 * One kind of thing a tool leaves behind (its containers, its images, its git repository, its state),
 * removed by name. Idempotent: removing what is already gone succeeds, so a deletion that failed
 * half-way can simply be run again.
 */
export interface ToolTraces {
  /** What it removes, for the answer and the log ("containers", "git repository"). */
  readonly what: string;
  /** `builds`: every build the tool ever had, for what is kept per build (sandboxes, logs). */
  remove(tool: string, builds: readonly Build[]): Promise<void>;
  /**
   * These and `other` traces of the same kind (the build backend's and the runtime's podman
   * containers) as one trace removing both in the same step; undefined when they cannot be joined.
   */
  join?(other: ToolTraces): ToolTraces | undefined;
}

export interface DeletedTool {
  readonly name: string;
  /** Builds that were still queued or running and were cancelled first (only with `force`). */
  readonly cancelled_builds: readonly string[];
  /** What was removed, in order. */
  readonly removed: readonly string[];
}

/** Builds looked at for the tool: every one it kept (retention keeps far fewer). */
const ALL_BUILDS = 10_000;

/**
 * `slipway tools delete`: removes everything of a tool. Refuses while a build is queued or running,
 * unless forced: deleting under a running build would let it push an image and deploy a release for a
 * tool that no longer exists. The traces are removed in the order given, state last, so a deletion cut
 * short still finds the tool and can be run again.
 */
export class ToolDeletion {
  constructor(
    private readonly deps: {
      readonly store: Pick<StateStore, "getTool" | "listBuilds">;
      readonly builds: BuildCanceller;
      /** In order; the one that removes the tool's own record comes last. */
      readonly traces: readonly ToolTraces[];
      readonly logger: Logger;
    },
  ) {}

  async delete(name: string, options: { force: boolean }): Promise<DeletedTool> {
    const { store, logger } = this.deps;
    if (!(await store.getTool(name))) throw new NotFoundError(`no tool named "${name}"`);
    const builds = await store.listBuilds(name, ALL_BUILDS);
    const unfinished = builds.filter((b) => !TERMINAL_STATUSES.has(b.status));
    if (unfinished.length > 0 && !options.force) {
      const b = unfinished[0]!;
      throw new ConflictError(
        `wait for build ${b.id} (${b.status}) to finish, cancel it, or pass --force to cancel it and delete "${name}" anyway`,
        { details: { builds: unfinished.map((u) => u.id) } },
      );
    }
    for (const b of unfinished) await this.deps.builds.cancel(b.id);
    const log = logger.child({ tool: name });
    const removed: string[] = [];
    for (const traces of this.deps.traces) {
      try {
        await traces.remove(name, builds);
      } catch (error) {
        throw new SlipwayError(
          "internal",
          `could not remove the ${traces.what} of "${name}" (${errorMessage(error)}); run \`slipway tools delete ${name}\` again`,
          { cause: error, details: { removed } },
        );
      }
      removed.push(traces.what);
      log.info({ what: traces.what }, "tool traces removed");
    }
    log.info({ removed, cancelled: unfinished.length }, "tool deleted");
    return { name, cancelled_builds: unfinished.map((b) => b.id), removed };
  }
}
