import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { TransientError } from "../../platform/errors.js";
import { isLoopback } from "../../platform/net.js";
import { podman } from "./podman.js";

export interface RegistryCredentials {
  readonly host: string;
  readonly username: string;
  readonly password: string;
}

/**
 * Pulls an image from Slipway's registry. The credentials go to podman in an auth file (0600, in a
 * fresh 0700 directory, removed afterwards), never as `--creds user:password`, which any local user
 * could read in `ps`. Images named by digest that are already on the machine are not pulled again:
 * the local copy is the same image, and skipping the round trip is most of what makes a rollback fast.
 */
export async function pullImage(
  image: string,
  registry: RegistryCredentials,
  repoRoot: string,
): Promise<void> {
  if (image.includes("@sha256:")) {
    const local = await podman(["image", "exists", image], { repoRoot, allowFailure: true });
    if (local.code === 0) return;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-auth-"));
  try {
    const authFile = path.join(dir, "auth.json");
    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString("base64");
    await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth } } }), { mode: 0o600 });
    // The embedded registry speaks plain HTTP on loopback; any other registry must present a valid
    // certificate, or an attacker on the path could serve a tool another image.
    const hostname = registry.host.replace(/:\d+$/, "");
    const tls = `--tls-verify=${isLoopback(hostname) ? "false" : "true"}`;
    const pull = await podman(["pull", "--quiet", tls, "--authfile", authFile, image], {
      repoRoot,
      allowFailure: true,
    });
    if (pull.code !== 0) throw new TransientError(`cannot pull ${image}: ${pull.stderr.trim().slice(-300)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
