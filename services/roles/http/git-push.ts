import type { TriggerResult, TriggerService } from "../../domain/pipeline/triggers.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import type { Logger } from "../../platform/logger.js";

export interface RefUpdateLike {
  readonly old: string;
  readonly new: string;
  readonly ref: string;
}

/**
 * What a push to Slipway's own git remote does: every updated ref goes through the same trigger as a
 * GitLab push, and the pusher reads the outcome in `git push`'s output.
 */
export function gitPushHandler(deps: {
  tools: ToolService;
  triggers: TriggerService;
  publicUrl: string;
  /** The repository's default branch, read after the push (the remote adopts the first pushed branch). */
  defaultBranch: (tool: string) => Promise<string | undefined>;
  logger: Logger;
}) {
  return async (toolName: string, updates: RefUpdateLike[]): Promise<string> => {
    const tool = await deps.tools.get(toolName);
    const defaultBranch = await deps.defaultBranch(toolName);
    const lines: string[] = [];
    for (const update of updates) {
      const result = await deps.triggers.push({
        tool,
        ref: update.ref,
        commit: update.new,
        sourceUrl: `${deps.publicUrl}/git/${toolName}.git`,
        defaultBranch,
        trigger: { kind: "git_push", ref: update.ref, actor: "git" },
      });
      lines.push(describe(update.ref, result));
    }
    return lines.join("\n") + "\n";
  };
}

function describe(ref: string, result: TriggerResult): string {
  switch (result.status) {
    case "queued":
      return `slipway: build ${result.build_id} queued for ${ref} (${result.reason})\nslipway: follow it with: slipway build logs ${result.build_id} -f`;
    case "duplicate":
      return `slipway: ${result.reason}`;
    case "ignored":
      return `slipway: nothing to build for ${ref}: ${result.reason}`;
  }
}
