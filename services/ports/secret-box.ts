/**
 * Encryption at rest for secrets Slipway must read back (platform/crypto-box.ts implements it).
 * `context` binds a sealed value to where it is stored: a value copied into another record does not open.
 */
export interface SecretBox {
  seal(plaintext: string, context: string): string;
  /** Throws if the value was altered, sealed with another key, or belongs to another context. */
  open(sealed: string, context: string): string;
}
