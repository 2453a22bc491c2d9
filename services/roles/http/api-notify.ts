import { Router } from "express";
import type { NotifyService } from "../../domain/notify/notify-service.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import { InputError } from "../../platform/errors.js";
import { toolOf } from "./api-jobs.js";

/**
 * `/api/v1/tools/:tool/notify`: who is told about failures (mail recipients) and the outgoing chat
 * webhook. Mounted inside the API router after its JSON parser and bearer authentication; the tool's
 * own token or the admin token may call it. The webhook's secret is in the answer that sets it, only.
 */
export function notifyRouter(deps: { readonly tools: ToolService; readonly notify: NotifyService }): Router {
  const r = Router();
  const base = "/api/v1/tools/:tool/notify";
  const field = (body: unknown, name: string): unknown => {
    const value = (body as Record<string, unknown> | undefined)?.[name];
    if (value === undefined) throw new InputError(`send {"${name}": …}`, { details: { field: name } });
    return value;
  };

  r.get(base, async (req, res) => {
    res.json(await deps.notify.show(await toolOf(req, deps)));
  });

  r.post(`${base}/recipients`, async (req, res) => {
    const tool = await toolOf(req, deps);
    const result = await deps.notify.addRecipient(tool, field(req.body, "address"));
    res.status(result.added ? 201 : 200).json({ tool, ...result });
  });

  r.delete(`${base}/recipients/:address`, async (req, res) => {
    const tool = await toolOf(req, deps);
    res.json({
      tool,
      ...(await deps.notify.removeRecipient(tool, String(req.params.address))),
      removed: true,
    });
  });

  r.put(`${base}/webhook`, async (req, res) => {
    const tool = await toolOf(req, deps);
    res.status(201).json({ tool, ...(await deps.notify.setWebhook(tool, field(req.body, "url"))) });
  });

  r.delete(`${base}/webhook`, async (req, res) => {
    const tool = await toolOf(req, deps);
    await deps.notify.deleteWebhook(tool);
    res.json({ tool, deleted: true });
  });
  return r;
}
