import { Router, type Request } from "express";
import { z } from "zod";
import type { ReleaseService } from "../../domain/releases/release-service.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import { validateToolName } from "../../domain/tools/tool.js";
import { InputError } from "../../platform/errors.js";
import { requireTool } from "./auth.js";

const rollbackBody = z.object({ release_id: z.string().min(1).max(64).optional() });

/**
 * `/api/v1/tools/:tool/releases` and `/rollback`. Mounted inside the API router (ApiDeps.routers), after
 * its JSON parser and bearer authentication; the tool's own token or the admin token may call it.
 */
export function releasesApiRouter(deps: { releases: ReleaseService; tools: ToolService }): Router {
  const r = Router();
  const toolOf = async (req: Request) => {
    const name = validateToolName(String(req.params.tool));
    requireTool(req, name);
    return (await deps.tools.get(name)).name;
  };

  r.get("/api/v1/tools/:tool/releases", async (req, res) => {
    const tool = await toolOf(req);
    const limit = Math.min(Number(req.query.limit ?? 50) || 50, 500);
    res.json(await deps.releases.list(tool, limit));
  });

  r.get("/api/v1/tools/:tool/releases/:id", async (req, res) => {
    const tool = await toolOf(req);
    res.json(await deps.releases.get(tool, String(req.params.id)));
  });

  r.get("/api/v1/tools/:tool/releases/:id/logs", async (req, res) => {
    const tool = await toolOf(req);
    const { release_id, log_id, lines } = await deps.releases.logs(tool, String(req.params.id));
    res.json({ release_id, log_id, lines: lines.map((l) => l.line) });
  });

  r.post("/api/v1/tools/:tool/rollback", async (req, res) => {
    const tool = await toolOf(req);
    const parsed = rollbackBody.safeParse(req.body ?? {});
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new InputError(
        `invalid request body: ${i ? `${i.path.join(".") || "body"}: ${i.message}` : "invalid"}`,
      );
    }
    const actor = req.principal?.kind ?? "api";
    res.status(202).json(await deps.releases.rollback(tool, parsed.data.release_id, actor));
  });
  return r;
}
