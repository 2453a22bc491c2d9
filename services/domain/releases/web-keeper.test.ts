import { describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import type { ExitedProcess } from "../../ports/runtime.js";
import { WebKeeper } from "./web-keeper.js";

/** A runtime whose exited web containers the test sets, and a deployer whose restores it counts. */
function setup(options: { down?: () => number } = {}) {
  let now = 1_000_000;
  let exited: ExitedProcess[] = [];
  const restores: string[] = [];
  const lines: string[] = [];
  const keeper = new WebKeeper({
    runtime: { exited: () => Promise.resolve(exited) },
    restore: (tool) => {
      restores.push(tool);
      // A restore replaces the exited container with a running one.
      exited = exited.filter((p) => p.tool !== tool);
      return Promise.resolve(options.down?.() ?? 0);
    },
    logs: { append: (_t, _r, l) => Promise.resolve(void lines.push(...l)) },
    logger: memoryLogger(),
    now: () => now,
  });
  let n = 0;
  const crash = (p: Partial<ExitedProcess> = {}) => {
    n++;
    exited.push({
      id: `c${n}`,
      tool: "t",
      process: "web",
      releaseId: "r1",
      replica: 0,
      exitCode: 1,
      ranMs: 3_000,
      exitedAt: now - 2_000,
      ...p,
    });
  };
  return { keeper, restores, lines, crash, advance: (ms: number) => void (now += ms) };
}

describe("WebKeeper", () => {
  it("restarts a crashed web process at once and says why in its log", async () => {
    const { keeper, restores, lines, crash } = setup();
    crash({ exitCode: 3 });
    await keeper.tick();
    expect(restores).toEqual(["t"]);
    expect(lines).toEqual(["slipway: web replica 0 exited with code 3 after 3 s; restarting it now"]);
    await keeper.tick();
    expect(restores).toEqual(["t"]);
  });

  it("backs off while it keeps crashing soon after each start: 10 s, then 20 s", async () => {
    const { keeper, restores, lines, crash, advance } = setup();
    crash();
    await keeper.tick();
    crash();
    await keeper.tick();
    expect(restores).toEqual(["t"]);
    expect(lines.at(-1)).toMatch(/restarting in 10 s \(2 crashes in a row, each within 60 s of its start\)$/);
    advance(9_000);
    await keeper.tick();
    expect(restores).toHaveLength(1);
    advance(1_000);
    await keeper.tick();
    expect(restores).toHaveLength(2);
    crash();
    await keeper.tick();
    expect(lines.at(-1)).toMatch(/restarting in 20 s \(3 crashes/);
  });

  it("starts a new series when the process had run for a minute", async () => {
    const { keeper, lines, crash } = setup();
    crash();
    await keeper.tick();
    crash({ ranMs: 61_000 });
    await keeper.tick();
    expect(lines.at(-1)).toMatch(/after 1 min; restarting it now$/);
  });

  it("waits for the process's last output lines before it tells and restarts", async () => {
    const { keeper, restores, lines, crash, advance } = setup();
    crash({ exitedAt: 1_000_000 });
    await keeper.tick();
    expect([restores, lines]).toEqual([[], []]);
    advance(1_500);
    await keeper.tick();
    expect(restores).toEqual(["t"]);
    expect(lines).toHaveLength(1);
  });

  it("names an out-of-memory kill, and ignores processes other than web", async () => {
    const { keeper, restores, lines, crash } = setup();
    crash({ process: "worker" });
    await keeper.tick();
    expect(restores).toEqual([]);
    crash({ exitCode: 137 });
    await keeper.tick();
    expect(lines).toEqual([
      "slipway: web replica 0 was killed (exit code 137: most often it ran out of its memory limit) after 3 s; restarting it now",
    ]);
  });

  it("counts a restart that did not come back as a crash and tries again later", async () => {
    let down = 1;
    const { keeper, restores, lines, crash, advance } = setup({ down: () => down });
    crash();
    await keeper.tick();
    expect(lines.at(-1)).toMatch(/^slipway: a web replica did not come back; restarting in 10 s/);
    advance(10_000);
    down = 0;
    await keeper.tick();
    expect(restores).toEqual(["t", "t"]);
    advance(60_000);
    await keeper.tick();
    expect(restores).toHaveLength(2);
  });
});
