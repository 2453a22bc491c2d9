import { createHmac, timingSafeEqual } from "node:crypto";
import { hashSecret, secretMatches } from "../../platform/secrets.js";
import type { SecretBox } from "../../ports/secret-box.js";
import type { Tool } from "./tool.js";

/** The fields a tool record keeps of its webhook secret: the hash always, the sealed value with a box. */
export function webhookSecretFields(
  tool: string,
  secret: string,
  box: SecretBox | undefined,
): Pick<Tool, "webhook_secret_hash" | "webhook_secret_sealed"> {
  return {
    webhook_secret_hash: hashSecret(secret),
    ...(box ? { webhook_secret_sealed: box.seal(secret, sealContext(tool)) } : {}),
  };
}

/**
 * The tool's webhook secret in plaintext, or undefined when it cannot be had: no sealed value yet (a
 * tool from before secrets were sealed), or one that no longer matches the hash. The hash is the
 * authority: a rotation replaces it at once, and a sealed value written by a racing lazy migration of
 * the old secret must not keep the old secret alive.
 */
export function openWebhookSecret(tool: Tool, box: SecretBox | undefined): string | undefined {
  if (!box || tool.webhook_secret_sealed === undefined) return undefined;
  const secret = box.open(tool.webhook_secret_sealed, sealContext(tool.name));
  return secretMatches(secret, tool.webhook_secret_hash) ? secret : undefined;
}

/**
 * Constant-time check of a hex HMAC-SHA256 signature of the raw body. Both sides are compared as
 * digests of equal length, so neither the signature's length nor its content leaks through timing.
 */
export function signatureMatches(secret: string, body: Buffer, presentedHex: string | undefined): boolean {
  if (presentedHex === undefined) return false;
  const expected = createHmac("sha256", secret).update(body).digest();
  const presented = Buffer.from(presentedHex.trim().toLowerCase(), "hex");
  // Buffer.from(hex) stops at the first non-hex pair; a signature must be all hex, exactly 32 bytes.
  return (
    presented.length === expected.length &&
    presentedHex.trim().length === expected.length * 2 &&
    timingSafeEqual(presented, expected)
  );
}

function sealContext(tool: string): string {
  return `webhook-secret:${tool}`;
}
