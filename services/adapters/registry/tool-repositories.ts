import { rm } from "node:fs/promises";
import path from "node:path";
import type { ToolTraces } from "../../domain/tools/tool-deletion.js";

/**
 * A tool's repositories in the embedded registry (`tool-<tool>/<component>`), removed from its storage
 * directory: the distribution API can delete manifests but never a repository, which would stay in
 * the catalog. The blobs the tool alone used are freed by the garbage collection at the next start.
 * Safe while the registry runs because its blob-descriptor cache is off (see `registryConfig`): a cached
 * descriptor would otherwise tell the next push of a tool of the same name that a layer it no longer
 * has is there, and that push's manifest would be refused.
 */
export class RegistryToolRepositories implements ToolTraces {
  readonly what = "registry images";

  constructor(private readonly registryDir: string) {}

  async remove(tool: string): Promise<void> {
    const repositories = path.join(this.registryDir, "data", "docker", "registry", "v2", "repositories");
    await rm(path.join(repositories, `tool-${tool}`), { recursive: true, force: true });
  }
}
