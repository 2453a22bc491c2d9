import { registered } from "../registered.js";
import type { ProfileFactory } from "./profile.js";

export type { RuntimeProfile, ProfileDeps, DeployerParts, DeployerDeps, Closers } from "./profile.js";

/**
 * Every runtime profile by its `SLIPWAY_RUNTIME` name. A new runtime is one file beside these and one
 * line here. Each is loaded only when chosen: @kubernetes/client-node alone adds about 70 MiB to the
 * server's memory, which the local profile would carry for nothing.
 */
const PROFILES = registered<ProfileFactory>("runtime profile", "SLIPWAY_RUNTIME", {
  podman: async () => (await import("./local.js")).localProfile,
  kubernetes: async () => (await import("./kubernetes.js")).kubernetesProfile,
});

/** The names `runtimeProfile` knows, for messages and docs. */
export const PROFILE_NAMES = PROFILES.names;

/** The factory of the runtime profile `name`; an unknown name stops the start before anything runs. */
export function runtimeProfile(name: string): Promise<ProfileFactory> {
  return PROFILES.load(name);
}
