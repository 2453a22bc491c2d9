import path from "node:path";
import { vi } from "vitest";

/**
 * Set-up of the unit suite: a unit test that starts a service fails at once, naming what to do, instead
 * of quietly making the suite slow and dependent on the machine. Other programs (sh, git, a test's own
 * helper processes) still run.
 */
const SERVICES = new Set(["redis-server", "podman", "docker-registry", "registry", "kube-apiserver", "etcd"]);

export function refuseService(command: string): void {
  if (!SERVICES.has(path.basename(command))) return;
  throw new Error(
    `unit tests start no services, but this test started ${command}: use the fakes in test/fakes, or move the test under test/ (the integration suite)`,
  );
}

vi.mock("node:child_process", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:child_process")>();
  const guarded = {
    ...real,
    spawn: ((command: string, ...rest: never[]) => {
      refuseService(command);
      return real.spawn(command, ...rest);
    }) as typeof real.spawn,
    execFile: ((command: string, ...rest: never[]) => {
      refuseService(command);
      return real.execFile(command, ...rest);
    }) as typeof real.execFile,
    execFileSync: ((command: string, ...rest: never[]) => {
      refuseService(command);
      return real.execFileSync(command, ...rest);
    }) as typeof real.execFileSync,
  };
  return { ...guarded, default: guarded };
});
