import express, { Router, type Request, type Response } from "express";
import {
  GITLAB_EVENTS,
  outsideSourceUrl,
  parsePushHook,
  type SourceRules,
} from "../../domain/gitlab/push-hook.js";
import type { TriggerResult, TriggerService } from "../../domain/pipeline/triggers.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import type { Tool } from "../../domain/tools/tool.js";
import { AuthError, SlipwayError } from "../../platform/errors.js";
import { hashSecret } from "../../platform/secrets.js";
import type { StateStore } from "../../ports/store.js";
import { addressLimiter, limitTool, type WebhookLimits } from "./rate-limit.js";
import type { ToolCache } from "./tool-cache.js";

export interface WebhookDeps {
  readonly tools: ToolService;
  readonly triggers: TriggerService;
  readonly store: StateStore;
  /** Tool records by name, so a delivery usually costs one Redis round trip (the intake script). */
  readonly toolCache: ToolCache;
  readonly maxBodyBytes: number;
  /** Absent: no rate limits (tests of other concerns). */
  readonly limits?: WebhookLimits | undefined;
  /** What a payload's `git_http_url` may point at. */
  readonly sources: SourceRules;
  /**
   * The repository URL of the tool's linked GitLab project, as GitLab's API gave it at link time:
   * a linked tool builds from there whatever the payload says. Absent: no GitLab linking here.
   */
  readonly linkedSourceUrl?: ((tool: string) => Promise<string | undefined>) | undefined;
}

/**
 * GitLab Push Hook and Tag Push Hook receiver. Order matters: the raw body is read first (this router
 * is mounted before any JSON parser), the token is checked in constant time before the body is even
 * parsed, and the answer is given as soon as the build is durably queued.
 */
export function gitlabWebhooks(deps: WebhookDeps): Router {
  const router = Router();
  const raw = express.raw({ type: () => true, limit: deps.maxBodyBytes });

  const handle = async (req: Request, res: Response, toolName: string | undefined) => {
    const secret = header(req, "x-gitlab-token");
    const tool = await authenticate(deps, toolName, secret);
    if (!tool) throw new AuthError("X-Gitlab-Token does not match this tool's webhook secret");
    await limitTool(deps.limits, tool.name);

    const event = header(req, "x-gitlab-event");
    // Own keys only: `"toString" in GITLAB_EVENTS` is true, and such an event must not deploy.
    if (!event || !Object.hasOwn(GITLAB_EVENTS, event)) {
      answer(res, 200, { status: "ignored", reason: `event "${event ?? "(none)"}" does not deploy` });
      return;
    }
    const type = header(req, "content-type") ?? "";
    if (!/^application\/json\b/i.test(type)) {
      throw new SlipwayError("unsupported_media_type", "GitLab webhooks must be sent as application/json");
    }
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(type)?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
      // JSON is UTF-8 (RFC 8259); read as UTF-8, another encoding would become a different payload.
      throw new SlipwayError(
        "unsupported_media_type",
        `GitLab webhooks must be UTF-8 JSON; this one says charset=${charset.slice(0, 40)}`,
      );
    }
    const body = parseJson(req.body as Buffer);
    const hook = parsePushHook(body);
    const sourceUrl =
      (await deps.linkedSourceUrl?.(tool.name)) ?? outsideSourceUrl(hook.project.git_http_url, deps.sources);

    const result = await deps.triggers.push({
      tool,
      ref: hook.ref,
      commit: hook.checkout_sha ?? (hook.after || null),
      sourceUrl,
      defaultBranch: hook.project.default_branch ?? undefined,
      trigger: {
        kind: hook.object_kind === "tag_push" ? "gitlab_tag" : "gitlab_push",
        ref: hook.ref,
        actor: hook.user_username ?? hook.user_name,
      },
      // Answered once in the same atomic step that queues the build (TriggerService.push).
      delivery: header(req, "idempotency-key") || undefined,
    });
    answer(res, result.status === "queued" ? 202 : 200, result);
  };

  // The address limit comes before the body is even read: a flood costs no body reads or lookups.
  const byAddress = addressLimiter(deps.limits);
  router.post("/hooks/gitlab", byAddress, raw, (req, res) => handle(req, res, undefined));
  router.post("/hooks/gitlab/:tool", byAddress, raw, (req, res) => handle(req, res, String(req.params.tool)));
  return router;
}

async function authenticate(deps: WebhookDeps, toolName: string | undefined, secret: string | undefined) {
  if (toolName !== undefined)
    return deps.tools.matchWebhookSecret(await deps.toolCache.get(toolName), secret);
  if (secret === undefined) return undefined;
  // Without a tool in the URL the secret names the tool: look it up by its hash.
  const owner = await deps.store.toolBySecretHash(hashSecret(secret));
  if (owner?.kind !== "webhook") return undefined;
  return deps.tools.matchWebhookSecret(await deps.toolCache.get(owner.tool), secret);
}

/**
 * A delivery with an Idempotency-Key GitLab already sent is answered as the first one was, and starts
 * nothing. The key is claimed before the work, so two racing redeliveries cannot both build.
 */
export async function answerOnce(
  store: StateStore,
  tool: string,
  key: string | undefined,
  work: () => Promise<TriggerResult>,
): Promise<TriggerResult & { redelivery?: boolean }> {
  if (!key) return work();
  const k = key.slice(0, 200);
  const seen = await store.rememberDelivery(tool, k, "pending");
  if (seen !== undefined) {
    const first = seen === "pending" ? undefined : (JSON.parse(seen) as TriggerResult);
    if (!first)
      return { status: "ignored", reason: "this delivery is already being handled", redelivery: true };
    if (first.status === "queued") return { ...first, status: "duplicate", redelivery: true };
    return { ...first, redelivery: true };
  }
  const result = await work();
  await store.answerDelivery(tool, k, JSON.stringify(result));
  return result;
}

/**
 * Written directly rather than with `res.json`: Express would hash every answer for an ETag that no
 * webhook sender uses, on the hottest path Slipway has.
 */
function answer(res: Response, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

export function header(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function parseJson(body: Buffer | undefined): unknown {
  try {
    return JSON.parse(body && body.length > 0 ? body.toString("utf8") : "");
  } catch (cause) {
    throw new SlipwayError("invalid_json", "request body is not valid JSON", { cause });
  }
}

export type { Tool };
