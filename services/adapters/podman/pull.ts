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
 * podman's options for pulling from Slipway's registry, valid while `use` runs. The credentials go to
 * podman in an auth file (0600, in a fresh 0700 directory, removed afterwards), never as
 * `--creds user:password`, which any local user could read in `ps`.
 */
export async function withRegistryAuth<T>(
  registry: RegistryCredentials,
  use: (args: readonly string[]) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-auth-"));
  try {
    const authFile = path.join(dir, "auth.json");
    const auth = Buffer.from(`${registry.username}:${registry.password}`).toString("base64");
    await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth } } }), { mode: 0o600 });
    // The embedded registry speaks plain HTTP on loopback; any other registry must present a valid
    // certificate, or an attacker on the path could serve a tool another image.
    const hostname = registry.host.replace(/:\d+$/, "");
    return await use(["--authfile", authFile, `--tls-verify=${isLoopback(hostname) ? "false" : "true"}`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** An image named by digest: a local copy of it, if there is one, is the same image. */
export function byDigest(image: string): boolean {
  return image.includes("@sha256:");
}

/**
 * After a `podman run --pull=missing` failed: a TransientError when the image is not on the machine,
 * so the pull was what failed (the registry was down, or does not have it yet) and the queue should
 * try again; undefined when the image is there and the run failed for another reason.
 */
export async function pullFailure(
  image: string,
  stderr: string,
  repoRoot: string,
): Promise<TransientError | undefined> {
  return (await onMachine(image, repoRoot)) ? undefined : cannotPull(image, stderr);
}

/**
 * Pulls an image from Slipway's registry, unless it is named by digest and already on the machine:
 * skipping the round trip is most of what makes a rollback fast.
 */
export async function pullImage(
  image: string,
  registry: RegistryCredentials,
  repoRoot: string,
): Promise<void> {
  if (byDigest(image) && (await onMachine(image, repoRoot))) return;
  const pull = await withRegistryAuth(registry, (auth) =>
    podman(["pull", "--quiet", ...auth, image], { repoRoot, allowFailure: true }),
  );
  if (pull.code !== 0) throw cannotPull(image, pull.stderr);
}

async function onMachine(image: string, repoRoot: string): Promise<boolean> {
  return (await podman(["image", "exists", image], { repoRoot, allowFailure: true })).code === 0;
}

/** Transient: the registry may be back, or have the image, when the queue tries again. */
function cannotPull(image: string, stderr: string): TransientError {
  return new TransientError(`cannot pull ${image}: ${stderr.trim().slice(-300)}`);
}
