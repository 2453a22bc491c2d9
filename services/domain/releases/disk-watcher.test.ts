import { describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import type { WrittenLayer } from "../../ports/runtime.js";
import { DiskWatcher } from "./disk-watcher.js";

const MIB = 1024 * 1024;

function layer(p: Partial<WrittenLayer>): WrittenLayer {
  return { id: "c1", tool: "t", kind: "web", process: "web", releaseId: "r1", replica: 0, bytes: 0, ...p };
}

describe("DiskWatcher", () => {
  it("stops only the containers over the limit, noting a web process's in its release's log", async () => {
    const stopped: string[] = [];
    const lines: string[] = [];
    const watcher = new DiskWatcher({
      layers: {
        measure: () =>
          Promise.resolve([
            layer({ id: "ok", bytes: 20 * MIB }),
            layer({ id: "big", replica: 1, bytes: 41 * MIB }),
            layer({ id: "job", kind: "job", process: "crawl", releaseId: undefined, bytes: 30 * MIB }),
          ]),
        stop: (id) => Promise.resolve(void stopped.push(id)),
      },
      logs: { append: (_t, r, l) => Promise.resolve(void lines.push(`${r}: ${l.join()}`)) },
      logger: memoryLogger(),
      limitMb: 20,
    });
    await watcher.tick();
    expect(stopped).toEqual(["big", "job"]);
    expect(lines).toEqual([
      "r1: slipway: web replica 1 wrote 41 MiB to its own filesystem, over the 20 MiB limit (SLIPWAY_RUN_DISK_MB): stopped; write large files elsewhere (a database, object storage)",
    ]);
  });
});
