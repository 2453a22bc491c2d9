import { Router } from "express";
import type { ToolService } from "../../domain/tools/tool-service.js";
import { validateToolName } from "../../domain/tools/tool.js";
import type { ToolRegistryAccess } from "../../ports/registry-access.js";
import { requireTool } from "./auth.js";

/**
 * `POST /api/v1/tools/:tool/registry/rotate-pull-credentials`: a new pull credential for the tool
 * (Harbor: the robot's secret is refreshed and the old one stops working), then a restart release,
 * whose deploy applies the new `registry-pull` Secret. The answer names the account, never the secret.
 * Mounted inside the API router (ApiDeps.routers), after its JSON parser and bearer authentication.
 */
export function registryRouter(deps: {
  readonly tools: Pick<ToolService, "get">;
  readonly access: Pick<ToolRegistryAccess, "rotatePullCredentials">;
  /** EnvVarService.restart with kind `restart`: the release id, or null when nothing runs yet. */
  readonly restart: (tool: string, why: string, actor: string) => Promise<string | null>;
}): Router {
  const r = Router();
  r.post("/api/v1/tools/:tool/registry/rotate-pull-credentials", async (req, res) => {
    const name = validateToolName(String(req.params.tool));
    requireTool(req, name);
    const tool = (await deps.tools.get(name)).name;
    const rotated = await deps.access.rotatePullCredentials(tool);
    const actor = req.principal?.kind === "tool" ? "token" : "admin";
    const release = await deps.restart(tool, "registry pull credential rotated", actor);
    res
      .status(202)
      .json({ tool, registry: rotated.registry, username: rotated.username, release_id: release });
  });
  return r;
}
