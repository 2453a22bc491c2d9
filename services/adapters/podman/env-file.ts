import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { SlipwayError } from "../../platform/errors.js";

/**
 * Hands a container's environment to podman in a file (mode 0600, in a fresh 0700 directory, removed
 * once `use` settles) for `--env-file`, never as `--env NAME=value` arguments, which any local user can
 * read in `ps`. podman reads the file line by line, so a value cannot contain a line break; the env
 * var rules reject those before they get here.
 */
export async function withEnvFile<T>(
  env: Readonly<Record<string, string>>,
  use: (file: string) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-env-"));
  try {
    const file = path.join(dir, "env");
    await writeFile(file, renderEnvFile(env), { mode: 0o600 });
    return await use(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function renderEnvFile(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([name, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || /[\0\r\n]/.test(value)) {
        throw new SlipwayError(
          "internal",
          `environment variable ${name.slice(0, 80)} cannot be passed to podman`,
        );
      }
      return `${name}=${value}\n`;
    })
    .join("");
}
