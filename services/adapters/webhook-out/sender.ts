import { createHmac } from "node:crypto";
import { fetch, type Agent } from "undici";
import { TransientError } from "../../platform/errors.js";
import type { WebhookSender } from "../../ports/notify.js";
import { publicOnlyDispatcher, serviceRefusal } from "../net/public-only.js";

/** The header carrying `sha256=<hex HMAC-SHA256 of the raw body>` under the tool's webhook secret. */
export const SIGNATURE_HEADER = "x-slipway-signature";

/** `sha256=<hex>`: what a receiver recomputes over the raw body it got and compares in constant time. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/**
 * POSTs notifications to tools' chat webhooks: public addresses only (or the operator's
 * SLIPWAY_SOURCE_ALLOW_HOSTS), no redirects followed, 10 s per attempt. A failure rejects; the
 * notifier's event is then delivered again later.
 */
export class HttpWebhookSender implements WebhookSender {
  private constructor(private readonly dispatcher: Agent) {}

  static create(allowHosts: readonly string[]): HttpWebhookSender {
    return new HttpWebhookSender(
      publicOnlyDispatcher(allowHosts, serviceRefusal("The notification webhook")),
    );
  }

  async post(url: string, secret: string, body: string): Promise<void> {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "slipway-notify",
        [SIGNATURE_HEADER]: signBody(secret, body),
      },
      body,
      redirect: "manual",
      dispatcher: this.dispatcher,
      signal: AbortSignal.timeout(10_000),
    });
    await res.body?.cancel();
    if (res.status < 200 || res.status >= 300)
      throw new TransientError(`the notification webhook answered HTTP ${res.status}`);
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
