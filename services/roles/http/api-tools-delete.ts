import { Router } from "express";
import type { ToolDeletion } from "../../domain/tools/tool-deletion.js";
import { validateToolName } from "../../domain/tools/tool.js";
import { requireAdmin } from "./auth.js";

/**
 * `DELETE /api/v1/tools/:tool[?force=true]`: removes everything of a tool (admin token only: a tool's
 * own token must not be able to erase its history). Mounted behind the API's bearer authentication.
 */
export function toolDeletionRouter(deps: { readonly deletion: ToolDeletion }): Router {
  const r = Router();
  r.delete("/api/v1/tools/:tool", async (req, res) => {
    requireAdmin(req);
    const name = validateToolName(String(req.params.tool));
    const force = req.query.force === "true" || req.query.force === "1";
    res.json(await deps.deletion.delete(name, { force }));
  });
  return r;
}
