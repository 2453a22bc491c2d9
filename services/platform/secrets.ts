import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** A new random secret: 32 bytes, base64url, prefixed so a leaked one is recognisable in a scan. */
export function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString("base64url")}`;
}

/** Secrets are stored as SHA-256 hashes; they are high-entropy, so no slow hash is needed. */
export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/**
 * Constant-time check of a presented secret against a stored hash. Hashing first makes both sides the
 * same length, so neither the length nor the content of the secret leaks through timing.
 */
export function secretMatches(presented: string | undefined, storedHash: string): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(hashSecret(presented), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A secret for one purpose, derived from a master secret (HMAC-SHA256): whoever holds it learns nothing
 * of the master or of the secrets for other purposes, and no extra state needs storing.
 */
export function deriveSecret(master: string, purpose: string): string {
  return createHmac("sha256", master).update(purpose, "utf8").digest("base64url");
}
