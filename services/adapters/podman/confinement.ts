import { createHash } from "node:crypto";
import type { ToolNetworks } from "./network.js";
/**
 * What every container Slipway starts shares, builds, webservices and jobs alike: the podman runtime
 * options and the hardening flags, kept in one place so that no kind of container drifts from the rest.
 */

/**
 * The owner label (and name prefix) of one server's containers of a kind: derived from its state
 * directory, so that a server listing, stopping or cleaning up its containers never touches those of
 * another server (or test) on the machine.
 */
export function containerOwner(home: string, kind: "web" | "jobs" | "build" | "net"): string {
  return `slipway-${kind}-${createHash("sha256").update(home).digest("hex").slice(0, 8)}`;
}

export interface PodmanRuntimeOptions {
  readonly repoRoot: string;
  /** Pull credentials for the local registry; used by podman only, never given to the container. */
  readonly registry: { readonly host: string; readonly username: string; readonly password: string };
  /** Prefix of container names and owner label, so test runs and servers on one machine do not see each other's containers. */
  readonly namePrefix: string;
  /** Each tool's own network, which its containers are started on (never podman's shared default). */
  readonly networks: ToolNetworks;
  /** Picks the loopback port a web process is published on; a free one by default (tests: a taken one). */
  readonly hostPort?: (() => Promise<number>) | undefined;
}

/**
 * Non-root is the image's (or the sandbox's) business; these are the rest: every capability dropped, no
 * privilege escalation, memory, CPU and process limits, and a tiny init as PID 1, which forwards SIGTERM (apps
 * that ignore it as PID 1 still stop promptly) and reaps zombies.
 */
export function confinementArgs(limits: {
  readonly memoryMb: number;
  readonly pids: number;
  /** Podman's `--cpus` (a CFS quota); none: no CPU limit. */
  readonly cpus?: number | undefined;
}): string[] {
  return [
    ...(limits.cpus === undefined ? [] : ["--cpus", String(limits.cpus)]),
    "--init",
    "--cap-drop",
    "all",
    "--security-opt",
    "no-new-privileges",
    "--memory",
    `${limits.memoryMb}m`,
    "--pids-limit",
    String(limits.pids),
  ];
}
