import { Router, type Request } from "express";
import type { ToolService } from "../../domain/tools/tool-service.js";
import { validateToolName } from "../../domain/tools/tool.js";
import type { WebserviceService } from "../../domain/releases/webservice-service.js";
import { InputError } from "../../platform/errors.js";
import { requireTool } from "./auth.js";

const RELEASE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `/api/v1/tools/:tool/webservice`: status, kept output, restart, stop, start. Mounted inside the API
 * router (ApiDeps.routers), after its JSON parser and bearer authentication.
 */
export function webserviceRouter(deps: { tools: ToolService; webservice: WebserviceService }): Router {
  const r = Router();
  const base = "/api/v1/tools/:tool/webservice";
  const toolOf = async (req: Request) => {
    const name = validateToolName(String(req.params.tool));
    requireTool(req, name);
    return (await deps.tools.get(name)).name;
  };
  const actor = (req: Request) => (req.principal?.kind === "tool" ? "token" : "admin");

  r.get(base, async (req, res) => {
    res.json(await deps.webservice.status(await toolOf(req)));
  });

  r.get(`${base}/logs`, async (req, res) => {
    const tool = await toolOf(req);
    const release = typeof req.query.release === "string" ? req.query.release : undefined;
    if (release !== undefined && !RELEASE_ID.test(release)) throw new InputError("release: not a release id");
    const tail = req.query.tail === undefined ? 200 : Number(req.query.tail);
    const { release_id, lines } = await deps.webservice.logs(tool, release, tail);
    if (req.query.follow !== "true" && req.query.follow !== "1") {
      res.json({ release_id, lines: lines.map((l) => l.line) });
      return;
    }
    // Plain text as it is written, until the client goes.
    res.status(200).type("text/plain; charset=utf-8");
    res.setHeader("Cache-Control", "no-store");
    res.setHeader("X-Slipway-Release", release_id);
    res.flushHeaders();
    for (const l of lines) res.write(`${l.line}\n`);
    const controller = new AbortController();
    res.on("close", () => controller.abort());
    const after = lines.at(-1)?.id ?? "$";
    for await (const l of deps.webservice.follow(tool, release_id, after, controller.signal)) {
      res.write(`${l.line}\n`);
    }
    res.end();
  });

  r.post(`${base}/restart`, async (req, res) => {
    const tool = await toolOf(req);
    res.status(202).json(await deps.webservice.restart(tool, actor(req)));
  });

  r.post(`${base}/stop`, async (req, res) => {
    const tool = await toolOf(req);
    res.json(await deps.webservice.stop(tool, actor(req)));
  });

  r.post(`${base}/start`, async (req, res) => {
    const tool = await toolOf(req);
    res.status(202).json(await deps.webservice.start(tool, actor(req)));
  });
  return r;
}
