import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

/**
 * A secret kept in a file under SLIPWAY_HOME (mode 0600): created on first start, the same afterwards.
 * Returns the secret and whether it was just created.
 */
export async function fileSecret(file: string, prefix: string): Promise<{ value: string; created: boolean }> {
  try {
    const value = (await readFile(file, "utf8")).trim();
    if (value) return { value, created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = `${prefix}_${randomBytes(32).toString("base64url")}`;
  // "wx": if another process created it first, its secret wins and is read back below.
  await writeFile(file, value + "\n", { mode: 0o600, flag: "wx" }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
  });
  return { value: (await readFile(file, "utf8")).trim(), created: true };
}
