import { ensureHostPackages } from "../services/adapters/host/packages.js";
import { createLogger } from "../services/platform/logger.js";

/**
 * The tests use the real redis-server, docker-registry, podman, git and debootstrap. On a fresh Debian
 * machine `npm test` installs them as `npm start` does (as root), or stops with the one command to run.
 */
export default async function setup(): Promise<void> {
  await ensureHostPackages(createLogger({ level: "info", destination: process.stderr }), {
    needRedis: true,
    // test/jobs.test.ts makes its small job image from a static busybox; test/dashboard.test.ts drives
    // Debian's headless Chromium; test/metrics-rules.test.ts checks the documented alert rules with
    // promtool (Debian ships it in prometheus; no server is started by installing it).
    extra: [
      { pkg: "busybox-static", file: "/bin/busybox" },
      { pkg: "chromium", file: "/usr/bin/chromium" },
      { pkg: "prometheus", file: "/usr/bin/promtool" },
    ],
  });
}
