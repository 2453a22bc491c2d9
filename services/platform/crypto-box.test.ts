import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CryptoBox, CryptoBoxError } from "./crypto-box.js";

describe("CryptoBox", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "slipway-crypto-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("round-trips text and never repeats a ciphertext", () => {
    const box = CryptoBox.fromKey(randomBytes(32));
    const a = box.seal("glpat-secret ü 🚀", "gitlab-token:web");
    const b = box.seal("glpat-secret ü 🚀", "gitlab-token:web");
    expect(a).toMatch(/^v1:[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain("glpat");
    expect(box.open(a, "gitlab-token:web")).toBe("glpat-secret ü 🚀");
    expect(box.open(box.seal(""), "")).toBe("");
  });

  it("creates the key file with mode 0600 on first use and reuses it", async () => {
    const path = join(dir, "home", "secrets", "box.key");
    const first = await CryptoBox.fromKeyFile(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "home", "secrets"))).mode & 0o077).toBe(0);
    const sealed = first.seal("token");
    const keyText = await readFile(path, "utf8");
    const again = await CryptoBox.fromKeyFile(path);
    expect(await readFile(path, "utf8")).toBe(keyText);
    expect(again.open(sealed)).toBe("token");
  });

  it("concurrent first uses agree on one key", async () => {
    const path = join(dir, "box.key");
    const boxes = await Promise.all([1, 2, 3, 4].map(() => CryptoBox.fromKeyFile(path)));
    const sealed = boxes[0]!.seal("x");
    for (const b of boxes) expect(b.open(sealed)).toBe("x");
  });

  it("detects any change to the ciphertext", () => {
    const box = CryptoBox.fromKey(randomBytes(32));
    const sealed = box.seal("a long enough secret value");
    const raw = Buffer.from(sealed.slice(3), "base64url");
    for (const index of [4, 10, 20, raw.length - 1]) {
      const tampered = Buffer.from(raw);
      tampered[index] = tampered[index]! ^ 0x01;
      expect(() => box.open(`v1:${tampered.toString("base64url")}`)).toThrow(/failed authentication/);
    }
    expect(() => box.open(`v1:${raw.subarray(0, raw.length - 1).toString("base64url")}`)).toThrow(
      CryptoBoxError,
    );
    expect(() => box.open("v1:AAAA")).toThrow(/truncated/);
  });

  it("refuses a box moved to another context", () => {
    const box = CryptoBox.fromKey(randomBytes(32));
    const sealed = box.seal("token", "gitlab-token:tool-a");
    expect(() => box.open(sealed, "gitlab-token:tool-b")).toThrow(/context mismatch/);
  });

  it("says clearly that a box was sealed with a different key", async () => {
    const sealed = CryptoBox.fromKey(randomBytes(32)).seal("token");
    const other = await CryptoBox.fromKeyFile(join(dir, "other.key"));
    expect(() => other.open(sealed)).toThrow(/sealed with a different key.*other\.key/);
  });

  it("rejects unknown versions and malformed key files", async () => {
    const box = CryptoBox.fromKey(randomBytes(32));
    expect(() => box.open("v2:abcd")).toThrow(/expected format v1/);
    expect(() => box.open("plaintext")).toThrow(/expected format v1/);
    expect(() => CryptoBox.fromKey(randomBytes(16))).toThrow(/32 bytes/);
    const bad = join(dir, "bad.key");
    await writeFile(bad, "not a key\n", { mode: 0o600 });
    await expect(CryptoBox.fromKeyFile(bad)).rejects.toThrow(/not 32 bytes of base64/);
  });
});
