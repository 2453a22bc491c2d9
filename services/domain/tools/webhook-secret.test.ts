import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CryptoBox } from "../../platform/crypto-box.js";
import type { Tool } from "./tool.js";
import { openWebhookSecret, signatureMatches, webhookSecretFields } from "./webhook-secret.js";

const box = CryptoBox.fromKey(randomBytes(32));
const tool = (name: string, secret: string): Tool => ({
  name,
  created_at: "2026-12-06T00:00:00Z",
  deploy: { branches: [], tags: [] },
  token_hash: "x",
  redeploy_token_hash: "y",
  ...webhookSecretFields(name, secret, box),
});

describe("webhook secrets kept sealed", () => {
  it("opens to the secret the hash names", () => {
    expect(openWebhookSecret(tool("a", "slw_one"), box)).toBe("slw_one");
  });

  it("does not open a sealed value older than the hash (rotated meanwhile)", () => {
    const rotated = {
      ...tool("a", "slw_one"),
      webhook_secret_hash: tool("a", "slw_two").webhook_secret_hash,
    };
    expect(openWebhookSecret(rotated, box)).toBeUndefined();
  });

  it("does not open another tool's sealed value", () => {
    const copied = { ...tool("a", "slw_one"), name: "b" };
    expect(() => openWebhookSecret(copied, box)).toThrow(/context mismatch/);
  });

  it("matches only the exact hex HMAC-SHA256 of the body", () => {
    const body = Buffer.from('{"ref":"refs/heads/main"}');
    const good = createHmac("sha256", "slw_one").update(body).digest("hex");
    expect(signatureMatches("slw_one", body, good)).toBe(true);
    expect(signatureMatches("slw_one", body, good.toUpperCase())).toBe(true);
    expect(signatureMatches("slw_two", body, good)).toBe(false);
    expect(signatureMatches("slw_one", body, `${good}zz`)).toBe(false);
    expect(signatureMatches("slw_one", body, good.slice(0, 62))).toBe(false);
    expect(signatureMatches("slw_one", body, undefined)).toBe(false);
  });
});
