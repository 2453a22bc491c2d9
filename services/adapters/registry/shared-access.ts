import { InputError } from "../../platform/errors.js";
import type { PullCredentials, ToolRegistryAccess } from "../../ports/registry-access.js";

/**
 * A plain OCI registry (the embedded docker-registry, or any `SLIPWAY_REGISTRY_KIND=oci` one): it has
 * no projects and no per-repository accounts, so every tool's pods pull with the same credential.
 * That credential can read every tool's images; per-tool isolation of images needs Harbor.
 */
export class SharedRegistryAccess implements ToolRegistryAccess {
  constructor(private readonly credentials: PullCredentials) {}

  preparePush(): Promise<void> {
    return Promise.resolve();
  }

  pullCredentials(): Promise<PullCredentials> {
    return Promise.resolve(this.credentials);
  }

  rotatePullCredentials(): Promise<PullCredentials> {
    return Promise.reject(
      new InputError(
        "this registry has one pull credential shared by all tools; rotate it at the registry and restart Slipway with the new SLIPWAY_REGISTRY_PULL_PASSWORD",
      ),
    );
  }
}
