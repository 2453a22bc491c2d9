import express, { Router, type Request } from "express";
import { z } from "zod";
import type { EnvVarService } from "../../domain/envvars/envvar-service.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import { validateToolName } from "../../domain/tools/tool.js";
import { InputError } from "../../platform/errors.js";
import type { StateStore } from "../../ports/store.js";
import { bearerAuth, requireTool } from "./auth.js";

export interface EnvVarsApiDeps {
  readonly envvars: EnvVarService;
  readonly tools: ToolService;
  readonly store: StateStore;
  readonly adminTokenHash: string;
}

const BASE = "/api/v1/tools/:tool/envvars";
/**
 * Its own body limit, parsed before the API's 64 KiB one: a 32 KiB value can grow up to six-fold when
 * JSON escapes it.
 */
const BODY_LIMIT = "256kb";
const putBody = z.object({ value: z.string() });

/**
 * `/api/v1/tools/:tool/envvars`: a tool's environment variables, for its own token or the admin token.
 * Listing hides values (`value: null`) unless `show_values=true`; a change answers at once with the
 * release that restarts the tool with it.
 */
export function envvarsRouter(deps: EnvVarsApiDeps): Router {
  const r = Router();
  r.use(BASE, express.json({ limit: BODY_LIMIT }), bearerAuth(deps.store, deps.adminTokenHash));

  r.get(BASE, async (req, res) => {
    const tool = await toolOf(req, deps);
    const show = req.query.show_values === "true" || req.query.show_values === "1";
    const vars = await deps.envvars.list(tool);
    res.json(vars.map((v) => ({ name: v.name, value: show ? v.value : null })));
  });

  r.get(`${BASE}/:name`, async (req, res) => {
    const tool = await toolOf(req, deps);
    res.json(await deps.envvars.get(tool, String(req.params.name)));
  });

  r.put(`${BASE}/:name`, async (req, res) => {
    const tool = await toolOf(req, deps);
    const parsed = putBody.safeParse(req.body);
    if (!parsed.success) throw new InputError('invalid request body: send {"value": "<string>"}');
    const change = await deps.envvars.set(tool, String(req.params.name), parsed.data.value, actor(req));
    res.status(change.created ? 201 : 200).json(change);
  });

  r.delete(`${BASE}/:name`, async (req, res) => {
    const tool = await toolOf(req, deps);
    res.json(await deps.envvars.delete(tool, String(req.params.name), actor(req)));
  });
  return r;
}

async function toolOf(req: Request, deps: EnvVarsApiDeps): Promise<string> {
  const name = validateToolName(String(req.params.tool));
  requireTool(req, name);
  return (await deps.tools.get(name)).name;
}

function actor(req: Request): string {
  return req.principal?.kind === "tool" ? "token" : "admin";
}
