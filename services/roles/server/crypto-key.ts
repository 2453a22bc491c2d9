import path from "node:path";
import { CryptoBox } from "../../platform/crypto-box.js";

/**
 * The file under SLIPWAY_HOME holding the one AES-256-GCM key of this Slipway home (base64, mode 0600,
 * created on first use). Everything Slipway encrypts at rest — linked GitLab tokens, tool environment
 * variables — uses this key, so backing up SLIPWAY_HOME/encryption-key with the Redis data is enough
 * to read them back; losing it makes them unreadable. (The name is the one GitLab linking chose first.)
 */
export const CRYPTO_KEY_FILE = "encryption-key";

/** The CryptoBox of a Slipway home; every role that reads or writes secrets at rest loads it this way. */
export function loadCryptoBox(home: string): Promise<CryptoBox> {
  return CryptoBox.fromKeyFile(path.join(home, CRYPTO_KEY_FILE));
}
