import { describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import type { ToolContainerUsage, UsageHistory, UsageSample, UsageSource } from "../../ports/usage.js";
import { UsageSampler } from "./sampler.js";

/** A history like Redis's list: capped to `keep`, gone once `ttlS` passed since the newest sample. */
class MemoryHistory implements UsageHistory {
  readonly lists = new Map<string, { samples: UsageSample[]; expiresAt: number }>();
  constructor(private readonly clock: () => number) {}
  record(tool: string, sample: UsageSample, limits: { keep: number; ttlS: number }): Promise<void> {
    const samples = [...(this.lists.get(tool)?.samples ?? []), sample].slice(-limits.keep);
    this.lists.set(tool, { samples, expiresAt: this.clock() + limits.ttlS * 1000 });
    return Promise.resolve();
  }
  recent(tool: string): Promise<UsageSample[]> {
    const list = this.lists.get(tool);
    return Promise.resolve(list && list.expiresAt > this.clock() ? list.samples : []);
  }
}

function setup(readings: (readonly ToolContainerUsage[] | Error)[]) {
  let t = Date.parse("2026-12-07T00:00:00Z");
  const clock = () => t;
  const history = new MemoryHistory(clock);
  const logger = memoryLogger();
  const source: UsageSource = {
    read: () => {
      const next = readings.shift() ?? [];
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
  };
  const sampler = new UsageSampler({
    source,
    history,
    logger,
    options: { intervalMs: 60_000, keep: 3 },
    now: () => new Date(t),
  });
  const advance = (ms: number) => (t += ms);
  return { sampler, history, logger, advance };
}

const web = (tool: string, cpuPercent: number, memoryBytes: number): ToolContainerUsage => ({
  tool,
  kind: "web",
  cpuPercent,
  memoryBytes,
});

describe("UsageSampler", () => {
  it("records per tool the sum of its containers' CPU and memory per process kind", async () => {
    const { sampler, history } = setup([
      [
        web("a", 1.5, 100),
        web("a", 2, 50),
        { tool: "a", kind: "job", cpuPercent: 9, memoryBytes: 7 },
        web("b", 0.1, 10),
      ],
    ]);
    await sampler.tick();
    expect(await history.recent("a")).toEqual([
      {
        at: "2026-12-07T00:00:00.000Z",
        kinds: { web: { cpuPercent: 3.5, memoryBytes: 150 }, job: { cpuPercent: 9, memoryBytes: 7 } },
      },
    ]);
    expect((await history.recent("b"))[0]?.kinds).toEqual({ web: { cpuPercent: 0.1, memoryBytes: 10 } });
  });

  it("keeps only the newest samples, and a tool without containers is forgotten once its samples age out", async () => {
    const { sampler, history, advance } = setup([
      [web("a", 1, 1), web("gone", 5, 5)],
      [web("a", 2, 2)],
      [web("a", 3, 3)],
      [web("a", 4, 4)],
    ]);
    for (let i = 0; i < 4; i++) {
      await sampler.tick();
      advance(60_000);
    }
    expect((await history.recent("a")).map((s) => s.kinds.web?.cpuPercent)).toEqual([2, 3, 4]);
    // "gone" had one sample, 4 minutes ago: past keep (3) + 1 intervals, its list expired.
    expect(await history.recent("gone")).toEqual([]);
  });

  it("logs a failed read and samples again at the next tick", async () => {
    const { sampler, history, logger } = setup([
      new Error("podman stats: no such container"),
      [web("a", 1, 1)],
    ]);
    await sampler.tick();
    expect(logger.entries.map((e) => e.msg)).toContain("container usage could not be read");
    await sampler.tick();
    expect(await history.recent("a")).toHaveLength(1);
  });

  it("samples at start and every interval until closed", async () => {
    const reads: number[] = [];
    const history = new MemoryHistory(() => 0);
    const sampler = new UsageSampler({
      source: { read: () => (reads.push(reads.length), Promise.resolve([web("a", 1, 1)])) },
      history,
      logger: memoryLogger(),
      options: { intervalMs: 5 },
    });
    sampler.start();
    while (reads.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    await sampler.close();
    const after = reads.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(reads.length).toBe(after);
  });
});
