import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { SlipwayError } from "./errors.js";

/**
 * Encryption at rest for secrets Slipway must be able to read back (linked GitLab tokens, deploy tokens,
 * later environment variables): AES-256-GCM, a random 96-bit nonce per message, one key per Slipway home.
 *
 * Format: `v1:` + base64url( key id (4 bytes) | nonce (12) | ciphertext | tag (16) ). The key id is the
 * start of SHA-256(key): it lets "encrypted with another key" be told apart from "tampered with", and is
 * authenticated along with the caller's `context`. `context` (e.g. `gitlab-token:<tool>`) binds a box to
 * where it is stored, so a box copied into another tool's record does not open there.
 */
const VERSION = "v1";
const KEY_BYTES = 32;
const KEY_ID_BYTES = 4;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export class CryptoBoxError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("internal", message, options);
  }
}

export class CryptoBox {
  private readonly keyId: Buffer;

  private constructor(
    private readonly key: Buffer,
    /** Named in errors, so an operator knows which file holds the key. */
    private readonly keySource: string,
  ) {
    this.keyId = createHash("sha256").update(key).digest().subarray(0, KEY_ID_BYTES);
  }

  /** For tests and for keys kept elsewhere (a Kubernetes secret). */
  static fromKey(key: Uint8Array, keySource = "the given key"): CryptoBox {
    if (key.length !== KEY_BYTES) {
      throw new CryptoBoxError(`${keySource} must be ${KEY_BYTES} bytes, got ${key.length}`);
    }
    return new CryptoBox(Buffer.from(key), keySource);
  }

  /**
   * Reads the key from `path` (base64, 32 bytes), creating it on first use with mode 0600 in a directory
   * created with mode 0700. Two processes starting at once cannot both create it: the write is exclusive
   * and the loser reads the winner's key.
   */
  static async fromKeyFile(path: string): Promise<CryptoBox> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    try {
      await writeFile(path, `${randomBytes(KEY_BYTES).toString("base64")}\n`, { mode: 0o600, flag: "wx" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new CryptoBoxError(`cannot create the encryption key file ${path}`, { cause: error });
      }
    }
    const text = (await readFile(path, "utf8")).trim();
    const key = Buffer.from(text, "base64");
    if (key.length !== KEY_BYTES || key.toString("base64") !== text) {
      throw new CryptoBoxError(
        `encryption key file ${path} is not ${KEY_BYTES} bytes of base64; restore it from a backup (secrets encrypted with it cannot be read without it)`,
      );
    }
    return new CryptoBox(key, `key file ${path}`);
  }

  seal(plaintext: string, context = ""): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.key, nonce);
    cipher.setAAD(this.aad(context));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    const packed = Buffer.concat([this.keyId, nonce, body, cipher.getAuthTag()]);
    return `${VERSION}:${packed.toString("base64url")}`;
  }

  /** Throws CryptoBoxError if the box is malformed, from another key, or was changed in any way. */
  open(box: string, context = ""): string {
    const sep = box.indexOf(":");
    const version = sep < 0 ? "" : box.slice(0, sep);
    if (version !== VERSION) {
      throw new CryptoBoxError(
        `unsupported encrypted value: expected format ${VERSION}, got "${version.slice(0, 10)}"`,
      );
    }
    const packed = Buffer.from(box.slice(sep + 1), "base64url");
    if (packed.length < KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES) {
      throw new CryptoBoxError("encrypted value is truncated");
    }
    const keyId = packed.subarray(0, KEY_ID_BYTES);
    if (!keyId.equals(this.keyId)) {
      throw new CryptoBoxError(
        `encrypted value was sealed with a different key (id ${keyId.toString("hex")}, ${this.keySource} has id ${this.keyId.toString("hex")}): restore the original key file`,
      );
    }
    const nonce = packed.subarray(KEY_ID_BYTES, KEY_ID_BYTES + NONCE_BYTES);
    const tag = packed.subarray(packed.length - TAG_BYTES);
    const body = packed.subarray(KEY_ID_BYTES + NONCE_BYTES, packed.length - TAG_BYTES);
    const decipher = createDecipheriv("aes-256-gcm", this.key, nonce);
    decipher.setAAD(this.aad(context));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
    } catch (error) {
      throw new CryptoBoxError(
        "encrypted value failed authentication: it was altered, or belongs to another record (context mismatch)",
        { cause: error },
      );
    }
  }

  private aad(context: string): Buffer {
    return Buffer.concat([Buffer.from(`${VERSION}\0`), this.keyId, Buffer.from(`\0${context}`, "utf8")]);
  }
}
