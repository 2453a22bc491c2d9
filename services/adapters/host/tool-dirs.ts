import { rm } from "node:fs/promises";
import path from "node:path";
import type { ToolTraces } from "../../domain/tools/tool-deletion.js";

/** The tool's build caches on disk: `<home>/cache/<tool>` and `<home>/layer-cache/tool-<tool>`. */
export class ToolCacheDirs implements ToolTraces {
  readonly what = "build caches";

  constructor(private readonly home: string) {}

  async remove(tool: string): Promise<void> {
    await rm(path.join(this.home, "cache", tool), { recursive: true, force: true });
    await rm(path.join(this.home, "layer-cache", `tool-${tool}`), { recursive: true, force: true });
  }
}
