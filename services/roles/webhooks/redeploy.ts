import { Router } from "express";
import { answerOnce } from "../../domain/pipeline/deliveries.js";
import type { TriggerService } from "../../domain/pipeline/triggers.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import { AuthError, ConflictError, SlipwayError } from "../../platform/errors.js";
import type { RefResolver } from "../../ports/refs.js";
import type { StateStore } from "../../ports/store.js";
import { header } from "./forge-hooks.js";
import { addressOf, limitAddress, limitTool, type WebhookLimits } from "./rate-limit.js";

/**
 * Toolforge's deploy-token webhook: `POST /hooks/redeploy/<tool>?token=…` rebuilds and redeploys the
 * tool's configured ref. The body is ignored, so any CI system can call it with a bare curl.
 */
export function redeployWebhook(deps: {
  tools: ToolService;
  triggers: TriggerService;
  store: StateStore;
  refs: RefResolver;
  limits?: WebhookLimits | undefined;
}): Router {
  const router = Router();
  router.post("/hooks/redeploy/:tool", async (req, res) => {
    await limitAddress(deps.limits, addressOf(req));
    const token = typeof req.query.token === "string" ? req.query.token : header(req, "x-slipway-token");
    const tool = await deps.tools.checkRedeployToken(String(req.params.tool), token);
    if (!tool) throw new AuthError("the redeploy token does not match this tool");
    await limitTool(deps.limits, tool.name);
    const source = tool.source;
    if (!source) {
      throw new ConflictError(
        `tool "${tool.name}" has no source yet: push to it (or link GitLab) once before using the redeploy hook`,
      );
    }
    const answer = await answerOnce(deps.store, tool.name, header(req, "idempotency-key"), async () => {
      const resolved = await deps.refs.resolve(source.url, source.ref, undefined, tool.name);
      if (!resolved) {
        throw new SlipwayError(
          "source_fetch_failed",
          `ref ${source.ref} no longer exists in the tool's repository`,
        );
      }
      return deps.triggers.push({
        tool,
        ref: resolved.ref,
        commit: resolved.commit,
        sourceUrl: source.url,
        defaultBranch: source.default_branch,
        trigger: { kind: "redeploy", ref: resolved.ref, actor: "redeploy-token" },
        explicit: true,
      });
    });
    res.status(answer.status === "queued" ? 202 : 200).json(answer);
  });
  return router;
}
