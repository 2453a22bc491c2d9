import type { BuildBackend } from "../../ports/build-backend.js";
import type { ImageExporter, LifecycleRunner } from "../../ports/build-steps.js";
import { SlipwayError } from "../../platform/errors.js";

/**
 * The local backend: the CNB lifecycle (detect, restore, build) over the builder's checkout, then the
 * exporter pushing the image, both on this machine. Phases come from the lifecycle as events.
 */
export function lifecycleBackend(lifecycle: LifecycleRunner, exporter: ImageExporter): BuildBackend {
  const prepare = lifecycle.prepare?.bind(lifecycle);
  return {
    ...(prepare ? { prepare } : {}),
    build: async (request, { onLog, onPhase, signal }) => {
      const result = await lifecycle.run({
        buildId: request.buildId,
        tool: request.tool,
        component: request.component,
        appDir: request.appDir,
        workDir: request.workDir,
        sourceDateEpoch: request.sourceDateEpoch,
        noCache: request.noCache,
        signal,
        onLog,
        onPhase,
      });
      throwIfAborted(signal);
      onPhase("export");
      onLog("===> EXPORTING");
      const exported = await exporter.export({
        result,
        repository: request.repository,
        tag: request.tag,
        sourceDateEpoch: request.sourceDateEpoch,
        commit: request.commit,
        sourceUrl: request.sourceUrl,
        workDir: request.workDir,
        onLog,
      });
      throwIfAborted(signal);
      return { ...exported, processes: result.processes };
    },
  };
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted)
    throw signal.reason instanceof Error ? signal.reason : new SlipwayError("cancelled", "cancelled");
}
