import express, { Router } from "express";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Trigger } from "../../domain/builds/build.js";
import { outsideSourceUrl, type SourceRules } from "../../domain/gitlab/push-hook.js";
import type { TriggerService } from "../../domain/pipeline/triggers.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import type { Tool } from "../../domain/tools/tool.js";
import { AuthError, InputError, SlipwayError } from "../../platform/errors.js";
import { hashSecret } from "../../platform/secrets.js";
import type { StateStore } from "../../ports/store.js";
import { withFront, type FrontHandler } from "../http/app.js";
import { addressLimiter, DeliveryLimits, type WebhookLimits } from "./rate-limit.js";
import type { ToolCache } from "./tool-cache.js";

/**
 * How a forge proves a delivery comes from someone holding the tool's webhook secret.
 * - `token`: the secret itself, in a header (GitLab's X-Gitlab-Token). Checked against the stored hash,
 *   so it works for every tool; a bare secret also names its tool (`POST /hooks/<forge>`).
 * - `hmac-sha256`: a hex HMAC-SHA256 of the raw body keyed with the secret, in a header, after an
 *   optional prefix (Gitea's X-Gitea-Signature; GitHub's X-Hub-Signature-256 with `sha256=`). Needs the
 *   sealed secret, and the tool in the URL (`POST /hooks/<forge>/<tool>`).
 * Both are compared in constant time by this module, never by an adapter.
 */
export type ForgeAuth =
  | { readonly kind: "token"; readonly header: string }
  | { readonly kind: "hmac-sha256"; readonly header: string; readonly prefix?: string };

/** What a forge's push event asks Slipway to build. `sourceUrl` is the payload's; it is checked here. */
export interface ForgePush {
  readonly ref: string;
  /** The commit to build; blank or null for a deletion. */
  readonly commit: string | null;
  readonly sourceUrl: string;
  readonly defaultBranch: string | undefined;
  readonly trigger: Trigger;
}

/**
 * One forge's webhooks: everything that differs between GitLab, Gitea, GitHub... An adapter parses
 * and names things; authentication, rate limits, media type, source checks, delivery de-duplication and
 * the answer are this module's, the same for every forge.
 */
export interface ForgeAdapter {
  /** The route: `POST /hooks/<route>` and `POST /hooks/<route>/<tool>`. Lowercase letters and digits. */
  readonly route: string;
  /** The forge's name in messages ("GitLab"). */
  readonly label: string;
  readonly auth: ForgeAuth;
  /** The header naming the event (lower case, as Node gives headers). */
  readonly eventHeader: string;
  /** Events that may build; others are answered 200 `ignored` before the body is parsed. */
  readonly pushEvents: ReadonlySet<string>;
  /** The header carrying the delivery's id, so a redelivery starts nothing (lower case). */
  readonly deliveryHeader?: string;
  /** The push in a parsed JSON body of one of `pushEvents`; throws InputError for a malformed one. */
  parse(event: string, body: unknown): ForgePush;
}

export interface WebhookDeps {
  readonly tools: ToolService;
  readonly triggers: TriggerService;
  readonly store: StateStore;
  /** Tool records by name, so a delivery usually costs one Redis round trip (the intake script). */
  readonly toolCache: ToolCache;
  readonly maxBodyBytes: number;
  /** Absent: no rate limits (tests of other concerns). */
  readonly limits?: WebhookLimits | undefined;
  /** What a payload's source URL may point at. */
  readonly sources: SourceRules;
  /**
   * The repository URL of the tool's linked GitLab project, as GitLab's API gave it at link time:
   * a linked tool builds from there whatever the payload says. Absent: no GitLab linking here.
   */
  readonly linkedSourceUrl?: ((tool: string) => Promise<string | undefined>) | undefined;
}

const ROUTE = /^[a-z][a-z0-9]{0,30}$/;

/**
 * The webhook receivers of the given forges, one route each (the registry: see forges.ts). Fails at
 * start when two forges claim one route or a route is not a plain word. Order matters in a delivery:
 * the address limit comes before the body is read here (this router is mounted before any JSON parser;
 * the front handler below counts it with the tool's, see DeliveryLimits), the secret or signature is
 * checked before the body is parsed, and the answer is given as soon as the build is durably queued.
 */
export function forgeWebhooks(deps: WebhookDeps, forges: readonly ForgeAdapter[]): Router {
  const router = Router();
  const raw = express.raw({ type: () => true, limit: deps.maxBodyBytes });
  const byAddress = addressLimiter(deps.limits);
  const byRoute = new Map<string, ForgeAdapter>();
  for (const forge of forges) {
    if (!ROUTE.test(forge.route) || byRoute.has(forge.route)) {
      throw new SlipwayError(
        "internal",
        `forge route "${forge.route}" ${byRoute.has(forge.route) ? "is registered twice" : "must be a lowercase word"}: give each forge adapter its own route`,
      );
    }
    byRoute.set(forge.route, forge);
    // The address was counted by `byAddress` already.
    const handle = (req: express.Request, res: express.Response, toolName: string | undefined) =>
      receive(
        deps,
        forge,
        req,
        () => req.body as Buffer | undefined,
        res,
        toolName,
        new DeliveryLimits(deps.limits),
      );
    if (forge.auth.kind === "token") {
      router.post(`/hooks/${forge.route}`, byAddress, raw, (req, res) => handle(req, res, undefined));
    }
    router.post(`/hooks/${forge.route}/:tool`, byAddress, raw, (req, res) =>
      handle(req, res, String(req.params.tool)),
    );
  }
  return withFront(router, frontHandler(deps, byRoute));
}

/** `/hooks/<route>` or `/hooks/<route>/<tool>`, as a delivery's URL spells them; anything else is Express's. */
const HOOK_PATH = /^\/hooks\/([a-z0-9]+)(?:\/([A-Za-z0-9._~-]+))?(?:\?|$)/;

/**
 * The same routes served before Express (see FrontHandler): the plain spelling of a delivery's URL
 * only. Whatever Express would treat specially (another letter case, a trailing slash, an escaped tool
 * name, a compressed body, a client address behind a proxy) is declined and goes to the router above,
 * so both answer every request alike. The address limit is taken with the tool's and the queueing in
 * one Redis round trip (DeliveryLimits): a limited address's body is read (up to the size limit) before
 * it is answered 429, which the router above spares, and an accepted delivery costs one script call.
 */
function frontHandler(deps: WebhookDeps, byRoute: ReadonlyMap<string, ForgeAdapter>): FrontHandler {
  return (req, res) => {
    if (req.method !== "POST" || req.headers["content-encoding"] !== undefined) return undefined;
    const match = HOOK_PATH.exec(req.url ?? "");
    const forge = match && byRoute.get(match[1]!);
    if (!forge) return undefined;
    const toolName = match[2];
    if (toolName === undefined && forge.auth.kind !== "token") return undefined;
    // Express's req.ip names the client behind a loopback proxy (X-Forwarded-For): leave that to it.
    const address = req.socket.remoteAddress;
    if (
      deps.limits &&
      deps.limits.perAddress > 0 &&
      (address === undefined || req.headers["x-forwarded-for"])
    )
      return undefined;
    const limits = new DeliveryLimits(deps.limits).address(address ?? "unknown");
    return receive(deps, forge, req, () => readBody(req, deps.maxBodyBytes), res, toolName, limits);
  };
}

/**
 * The body as `express.raw` reads it: undefined when the request has none, and the same errors for one
 * over the limit (before reading, when Content-Length says so) or one shorter than it said.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = req.headers["content-length"];
  const length = declared === undefined ? undefined : Number(declared);
  if (req.headers["transfer-encoding"] === undefined && (length === undefined || Number.isNaN(length))) {
    return Promise.resolve(undefined);
  }
  if (length !== undefined && length > limit) {
    req.resume();
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit) {
        done();
        req.resume();
        reject(tooLarge(limit));
      } else chunks.push(chunk);
    };
    const onEnd = () => {
      done();
      if (length !== undefined && received !== length) {
        reject(new InputError("request size did not match content length"));
      } else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    };
    const onAborted = () => {
      done();
      reject(new InputError("request aborted"));
    };
    const done = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("aborted", onAborted);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("aborted", onAborted);
  });
}

function tooLarge(limit: number): SlipwayError {
  return new SlipwayError("payload_too_large", `request body exceeds ${limit} bytes`);
}

/**
 * One delivery, its limits taken once whatever the answer (see DeliveryLimits): with the queueing when
 * it gets that far, otherwise before answering, an exceeded limit replacing the answer.
 */
async function receive(
  deps: WebhookDeps,
  forge: ForgeAdapter,
  req: IncomingMessage,
  loadBody: () => Buffer | undefined | Promise<Buffer | undefined>,
  res: ServerResponse,
  toolName: string | undefined,
  limits: DeliveryLimits,
): Promise<void> {
  try {
    const body = await loadBody();
    const tool = await authenticate(deps, forge, req, body, toolName);
    limits.tool(tool.name);
    const event = header(req, forge.eventHeader);
    if (!event || !forge.pushEvents.has(event)) {
      await limits.spend();
      answer(res, 200, { status: "ignored", reason: `event "${event ?? "(none)"}" does not deploy` });
      return;
    }
    requireUtf8Json(req, forge.label);
    const push = forge.parse(event, parseJson(body));
    const sourceUrl =
      (await deps.linkedSourceUrl?.(tool.name)) ?? outsideSourceUrl(push.sourceUrl, deps.sources);

    const result = await deps.triggers.push({
      tool,
      ref: push.ref,
      commit: push.commit,
      sourceUrl,
      defaultBranch: push.defaultBranch,
      trigger: push.trigger,
      // Answered once in the same atomic step that queues the build (TriggerService.push).
      delivery: (forge.deliveryHeader && header(req, forge.deliveryHeader)) || undefined,
      limits,
    });
    // Nothing left to take when the push reached the intake; a deleted ref or the deploy policy did not.
    await limits.spend();
    answer(res, result.status === "queued" ? 202 : 200, result);
  } catch (error) {
    await limits.spend();
    throw error;
  }
}

async function authenticate(
  deps: WebhookDeps,
  forge: ForgeAdapter,
  req: IncomingMessage,
  body: Buffer | undefined,
  toolName: string | undefined,
): Promise<Tool> {
  const auth = forge.auth;
  const presented = header(req, auth.header);
  if (auth.kind === "hmac-sha256") {
    const prefix = auth.prefix ?? "";
    const signature = presented?.startsWith(prefix) ? presented.slice(prefix.length) : undefined;
    const known = toolName === undefined ? undefined : await deps.toolCache.get(toolName);
    // No body at all is signed as an empty one (it cannot match a real signature either way).
    const tool = deps.tools.matchWebhookSignature(known, body ?? Buffer.alloc(0), signature);
    if (!tool)
      throw new AuthError(
        `${headerName(auth.header)} is not a signature made with this tool's webhook secret`,
      );
    return tool;
  }
  const tool = await matchToken(deps, toolName, presented);
  if (!tool) throw new AuthError(`${headerName(auth.header)} does not match this tool's webhook secret`);
  return tool;
}

async function matchToken(deps: WebhookDeps, toolName: string | undefined, secret: string | undefined) {
  if (toolName !== undefined)
    return deps.tools.matchWebhookSecret(await deps.toolCache.get(toolName), secret);
  if (secret === undefined) return undefined;
  // Without a tool in the URL the secret names the tool: look it up by its hash.
  const owner = await deps.store.toolBySecretHash(hashSecret(secret));
  if (owner?.kind !== "webhook") return undefined;
  return deps.tools.matchWebhookSecret(await deps.toolCache.get(owner.tool), secret);
}

/** `x-gitlab-token` → `X-Gitlab-Token`, as forges' documentation spells it. */
function headerName(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, c: string) => dash + c.toUpperCase());
}

function requireUtf8Json(req: IncomingMessage, label: string): void {
  const type = header(req, "content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new SlipwayError("unsupported_media_type", `${label} webhooks must be sent as application/json`);
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(type)?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
    // JSON is UTF-8 (RFC 8259); read as UTF-8, another encoding would become a different payload.
    throw new SlipwayError(
      "unsupported_media_type",
      `${label} webhooks must be UTF-8 JSON; this one says charset=${charset.slice(0, 40)}`,
    );
  }
}

/**
 * Written directly rather than with `res.json`: Express would hash every answer for an ETag that no
 * webhook sender uses, on the hottest path Slipway has.
 */
function answer(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

export function header(req: IncomingMessage, name: string): string | undefined {
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
