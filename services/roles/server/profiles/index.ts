import { ConfigError } from "../../../platform/env.js";
import type { ProfileFactory } from "./profile.js";

export type { RuntimeProfile, ProfileDeps, DeployerParts, DeployerDeps, Closers } from "./profile.js";

/**
 * Every runtime profile by its `SLIPWAY_RUNTIME` name. A new runtime is one file beside these and one
 * line here. Each is loaded only when chosen: @kubernetes/client-node alone adds about 70 MiB to the
 * server's memory, which the local profile would carry for nothing.
 */
const PROFILES: Readonly<Record<string, () => Promise<ProfileFactory>>> = {
  podman: async () => (await import("./local.js")).localProfile,
  kubernetes: async () => (await import("./kubernetes.js")).kubernetesProfile,
};

/** The names `runtimeProfile` knows, for messages and docs. */
export const PROFILE_NAMES: readonly string[] = Object.keys(PROFILES);

/** The factory of the runtime profile `name`; an unknown name stops the start before anything runs. */
export async function runtimeProfile(name: string): Promise<ProfileFactory> {
  const load = Object.hasOwn(PROFILES, name) ? PROFILES[name] : undefined;
  if (!load)
    throw new ConfigError(
      `no runtime profile "${name}" (SLIPWAY_RUNTIME); known: ${PROFILE_NAMES.join(", ")}`,
    );
  return load();
}
