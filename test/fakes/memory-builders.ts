import type { BuilderRegistry } from "../../services/ports/builders.js";

/**
 * The builders of one pretend deployment, in memory: what RedisBuilderRegistry keeps in Redis for all
 * builder processes. `start()` is a builder process starting; its `close()` (or `die()`) is it stopping,
 * after which its heartbeat is gone at once (Redis lets it expire).
 */
export class MemoryBuilders {
  private readonly alive = new Set<string>();
  /** Builder id -> builds it took and has not finished; kept after it dies, as in Redis. */
  private readonly taken = new Map<string, Set<string>>();
  private next = 0;

  start(): MemoryBuilderRegistry {
    const id = `builder-${++this.next}`;
    this.alive.add(id);
    this.taken.set(id, new Set());
    return new MemoryBuilderRegistry(id, this);
  }

  /** @internal the registry's view of the shared state. */
  state() {
    return { alive: this.alive, taken: this.taken };
  }
}

export class MemoryBuilderRegistry implements BuilderRegistry {
  constructor(
    readonly id: string,
    private readonly builders: MemoryBuilders,
  ) {}

  took(buildId: string): Promise<void> {
    this.builds(this.id).add(buildId);
    return Promise.resolve();
  }

  finished(buildId: string): Promise<void> {
    this.builds(this.id).delete(buildId);
    return Promise.resolve();
  }

  alive(builderId: string): Promise<boolean> {
    return Promise.resolve(this.builders.state().alive.has(builderId));
  }

  orphans(): Promise<{ builder: string; builds: string[] }[]> {
    const { alive, taken } = this.builders.state();
    const dead = [...taken.keys()].filter((b) => b !== this.id && !alive.has(b));
    return Promise.resolve(dead.map((builder) => ({ builder, builds: [...this.builds(builder)] })));
  }

  forget(builderId: string): Promise<void> {
    this.builders.state().taken.delete(builderId);
    return Promise.resolve();
  }

  /** Stops cleanly: forgotten if it has no builds left, as RedisBuilderRegistry.close. */
  async close(): Promise<void> {
    if (this.builds(this.id).size === 0) await this.forget(this.id);
    this.builders.state().alive.delete(this.id);
  }

  private builds(builder: string): Set<string> {
    const { taken } = this.builders.state();
    const set = taken.get(builder) ?? new Set<string>();
    taken.set(builder, set);
    return set;
  }
}
