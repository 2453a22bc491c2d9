import type { Tool } from "../../domain/tools/tool.js";
import type { StateStore } from "../../ports/store.js";

/** Long enough to spare a busy hook most lookups; short enough to bound a missed invalidation. */
const TTL_MS = 1000;

/**
 * Tool records for webhook deliveries, kept for a second. A change of the tool (secret rotated, deploy
 * policy edited) drops its entry before the write returns in this process and over pub/sub in others;
 * the TTL only bounds how long a lost pub/sub message could leave an entry stale. A lookup that raced
 * an invalidation is not kept, so it cannot put the old record back.
 */
export class ToolCache {
  private readonly entries = new Map<string, { tool: Tool; at: number }>();
  private generation = 0;

  private constructor(private readonly store: StateStore) {}

  static async create(store: StateStore): Promise<ToolCache> {
    const cache = new ToolCache(store);
    await store.watchTools((name) => cache.forget(name));
    return cache;
  }

  async get(name: string): Promise<Tool | undefined> {
    const hit = this.entries.get(name);
    if (hit && Date.now() - hit.at < TTL_MS) return hit.tool;
    const generation = this.generation;
    const tool = await this.store.getTool(name);
    // Unknown tools are not kept: a tool created a moment later must be found.
    if (tool && generation === this.generation) this.entries.set(name, { tool, at: Date.now() });
    else this.entries.delete(name);
    return tool;
  }

  private forget(name: string): void {
    this.generation++;
    this.entries.delete(name);
  }
}
