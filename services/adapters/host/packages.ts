import { access } from "node:fs/promises";
import { SlipwayError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import { run } from "../../platform/process.js";

/** Debian packages the local profile needs, and a file each one installs. */
export const HOST_PACKAGES: readonly { pkg: string; file: string }[] = [
  { pkg: "redis-server", file: "/usr/bin/redis-server" },
  { pkg: "podman", file: "/usr/bin/podman" },
  { pkg: "runc", file: "/usr/sbin/runc" },
  // Podman's network backend (infra/containers.conf); aardvark-dns is what podman starts for a network
  // with DNS, which Slipway's own networks turn off, but an operator's may not.
  { pkg: "netavark", file: "/usr/lib/podman/netavark" },
  { pkg: "aardvark-dns", file: "/usr/lib/podman/aardvark-dns" },
  { pkg: "docker-registry", file: "/usr/bin/docker-registry" },
  { pkg: "debootstrap", file: "/usr/sbin/debootstrap" },
  { pkg: "git", file: "/usr/lib/git-core/git-http-backend" },
  // The git remote's post-receive hook posts the pushed refs to the server with it.
  { pkg: "curl", file: "/usr/bin/curl" },
  { pkg: "catatonit", file: "/usr/bin/catatonit" },
];

/** Only `npm run bench` needs it, for the `buildah bud` baseline. */
export const BUILDAH: { pkg: string; file: string } = { pkg: "buildah", file: "/usr/bin/buildah" };
/** The bench's webhook load generator. */
export const WRK: { pkg: string; file: string } = { pkg: "wrk", file: "/usr/bin/wrk" };

export async function missingPackages(
  packages: readonly { pkg: string; file: string }[] = HOST_PACKAGES,
): Promise<string[]> {
  const missing: string[] = [];
  for (const { pkg, file } of packages) {
    try {
      await access(file);
    } catch {
      missing.push(pkg);
    }
  }
  return missing;
}

/**
 * Installs what is missing when running as root; otherwise fails with the one command that does it.
 * `needRedis` is false when the operator gives REDIS_URL.
 */
export async function ensureHostPackages(
  logger: Logger,
  options: { needRedis: boolean; extra?: readonly { pkg: string; file: string }[] },
): Promise<void> {
  const missing = (await missingPackages([...HOST_PACKAGES, ...(options.extra ?? [])])).filter(
    (p) => options.needRedis || p !== "redis-server",
  );
  if (missing.length === 0) return;
  const command = `apt-get update && apt-get install -y ${missing.join(" ")}`;
  if (process.getuid?.() !== 0) {
    throw new SlipwayError(
      "stack_unavailable",
      `missing Debian packages: ${missing.join(", ")}. As root, run:\n  ${command}`,
    );
  }
  logger.info({ packages: missing }, "installing missing Debian packages");
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
    DEBIAN_FRONTEND: "noninteractive",
  };
  await run("apt-get", ["update", "-qq"], { env });
  await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env });
}
