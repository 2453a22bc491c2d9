import type { Release } from "../../services/domain/releases/release.js";
import { PipelineError } from "../../services/platform/errors.js";
import type { Rollout, RolloutPlan, Say } from "../../services/ports/rollout.js";
import type { RunOnceResult } from "../../services/ports/runtime.js";
import type { Route } from "../../services/ports/store.js";

/**
 * A runtime in memory for the one deploy routine (domain/releases/deployer.ts): a release's processes
 * are its id in `running`, each step is written to `steps` (`start r1`, `switch r1`, …), and a test
 * scripts what the runtime does: the release phase's result, a start that fails, or something that
 * happens while a release starts (another deploy going live meanwhile).
 */
export class MemoryRollout implements Rollout {
  readonly releasePhaseLabel = "release process";
  /** Ids of the releases whose processes run. */
  readonly running = new Set<string>();
  readonly steps: string[] = [];
  /** Environments the releases were planned with, by release id. */
  readonly vars = new Map<string, Readonly<Record<string, string>>>();
  releasePhaseResult: RunOnceResult = { code: 0, timedOut: false, tail: [] };
  releasePhaseOutput: readonly string[] = [];
  /** Thrown by `start` (after the processes started, as a runtime whose processes never get ready). */
  startFailure: PipelineError | undefined;
  /** Runs inside `start`, once the release's processes run and before they are ready. */
  whileStarting: ((release: Release) => Promise<void>) | undefined;

  where(release: Release): string {
    return ` to memory ${release.tool}`;
  }

  plan(release: Release, vars: Readonly<Record<string, string>>, _say: Say): Promise<RolloutPlan> {
    this.vars.set(release.id, vars);
    this.steps.push(`plan ${release.id}`);
    return Promise.resolve({
      releasePhase: (_timeoutS, onLine) => {
        this.steps.push(`release phase ${release.id}`);
        for (const line of this.releasePhaseOutput) onLine(line);
        return Promise.resolve(this.releasePhaseResult);
      },
      start: async () => {
        this.steps.push(`start ${release.id}`);
        this.running.add(release.id);
        await this.whileStarting?.(release);
        if (this.startFailure) throw this.startFailure;
        return { probe: "ready" };
      },
      switchOver: () => {
        this.steps.push(`switch ${release.id}`);
        return Promise.resolve(routeOf(release));
      },
      retire: () => {
        this.steps.push(`retire ${release.id}`);
        for (const id of this.running) if (id !== release.id) this.running.delete(id);
        return Promise.resolve();
      },
      abandon: () => {
        this.steps.push(`abandon ${release.id}`);
        this.running.delete(release.id);
        return Promise.resolve();
      },
    });
  }
}

/** The route MemoryRollout gives a release. */
export function routeOf(release: Pick<Release, "id" | "tool">): Route {
  return { tool: release.tool, release_id: release.id, host: `${release.id}.memory`, port: 8000 };
}
