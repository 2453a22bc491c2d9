import { Router } from "express";
import { z } from "zod";
import type { GitlabLinkService } from "../../domain/gitlab/link-service.js";
import { validateToolName } from "../../domain/tools/tool.js";
import { InputError } from "../../platform/errors.js";
import { requireTool } from "./auth.js";

const linkBody = z.object({
  url: z.string().min(1).max(2048),
  project: z.union([z.number().int().positive(), z.string().min(1).max(1024)]),
  token: z.string().min(1).max(1024),
});

/**
 * `/api/v1/tools/:tool/gitlab`: link, show and unlink a GitLab project. Mounted inside the API router,
 * after its JSON parser and bearer authentication; the tool's own token or the admin token may call it.
 * No answer ever carries the access token or the deploy token.
 */
export function gitlabApiRouter(links: GitlabLinkService): Router {
  const r = Router();
  const toolName = (raw: unknown) => {
    const name = validateToolName(String(raw));
    return name;
  };

  r.post("/api/v1/tools/:tool/gitlab", async (req, res) => {
    const tool = toolName(req.params.tool);
    requireTool(req, tool);
    const parsed = linkBody.safeParse(req.body ?? {});
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      // The message names the field, never its value: the body holds a token.
      throw new InputError(
        `invalid request body: ${i ? `${i.path.join(".") || "body"}: ${i.message}` : "invalid"}; send {url, project, token}`,
        { details: { field: i?.path.join(".") } },
      );
    }
    const { url, project, token } = parsed.data;
    res.status(201).json(await links.link({ tool, url, project, token }));
  });

  r.get("/api/v1/tools/:tool/gitlab", async (req, res) => {
    const tool = toolName(req.params.tool);
    requireTool(req, tool);
    res.json({ tool, gitlab: await links.status(tool) });
  });

  r.delete("/api/v1/tools/:tool/gitlab", async (req, res) => {
    const tool = toolName(req.params.tool);
    requireTool(req, tool);
    const removed = await links.unlink(tool);
    res.json({ tool, unlinked: removed !== undefined, gitlab: removed ?? null });
  });
  return r;
}
