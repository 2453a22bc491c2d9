import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { InputError } from "../../platform/errors.js";

const schema = z.object({
  auths: z
    .record(
      z.string(),
      z.object({
        auth: z.string().optional(),
        username: z.string().optional(),
        password: z.string().optional(),
      }),
    )
    .default({}),
});

export interface RegistryLogin {
  readonly username: string;
  readonly password: string;
}

/**
 * The login for registry `host` in `<dir>/config.json` (docker's format, as a Kubernetes
 * `kubernetes.io/dockerconfigjson` Secret holds it). Undefined when the file names no login for it.
 * Errors name the file and the host, never what the file holds.
 */
export async function readDockerLogin(dir: string, host: string): Promise<RegistryLogin | undefined> {
  const file = path.join(dir, "config.json");
  let parsed;
  try {
    parsed = schema.parse(JSON.parse(await readFile(file, "utf8")));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new InputError(`${file} does not exist`);
    throw new InputError(`${file} is not a docker config.json ({"auths": {"<host>": {"auth": …}}})`);
  }
  const entry = Object.entries(parsed.auths).find(([key]) => hostOf(key) === host)?.[1];
  if (!entry) return undefined;
  if (entry.username !== undefined && entry.password !== undefined)
    return { username: entry.username, password: entry.password };
  const decoded = Buffer.from(entry.auth ?? "", "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) throw new InputError(`${file}: the login for ${host} is not base64 of user:password`);
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Keys may be `host`, `host:port` or a URL (`https://index.docker.io/v1/`). */
function hostOf(key: string): string {
  return key.includes("://") ? new URL(key).host : (key.split("/")[0] ?? key);
}
