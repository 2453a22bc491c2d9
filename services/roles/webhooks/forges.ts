import type { Router } from "express";
import { forgeWebhooks, type ForgeAdapter, type WebhookDeps } from "./forge-hooks.js";
import { gitlabForge } from "./gitlab.js";

/**
 * The forges Slipway takes webhooks from, each at `POST /hooks/<route>`. Adding one is an adapter file
 * beside gitlab.ts and a line here (docs/architecture.md, "Adding a forge").
 */
export const FORGES: readonly ForgeAdapter[] = [gitlabForge];

/** The webhook receivers of every registered forge. */
export function forgeReceivers(deps: WebhookDeps): Router {
  return forgeWebhooks(deps, FORGES);
}
