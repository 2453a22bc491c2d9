import { rm } from "node:fs/promises";
import type { ToolTraces } from "../../domain/tools/tool-deletion.js";
import { repoPath } from "./http-backend.js";

/** The tool's bare repository of Slipway's own git remote, `<reposDir>/<tool>.git`. */
export class GitToolRepository implements ToolTraces {
  readonly what = "git repository";

  constructor(private readonly reposDir: string) {}

  async remove(tool: string): Promise<void> {
    await rm(repoPath(this.reposDir, tool), { recursive: true, force: true });
  }
}
