import { describe, expect, it } from "vitest";
import { counterFiles, firstCause } from "./limits.js";

const limits = { memoryMb: 256, pids: 64 };

describe("counterFiles", () => {
  it("reads the v1 memory and pids hierarchies of a hybrid machine, not the unified one", () => {
    const id = "libpod-96303107b9d2";
    const text = [
      "9:name=systemd:/",
      `8:pids:/libpod_parent/${id}`,
      `4:memory:/libpod_parent/${id}`,
      "2:cpu,cpuacct:/",
      "0::/",
      "",
    ].join("\n");
    expect(counterFiles(text, limits)).toEqual([
      {
        file: `/sys/fs/cgroup/memory/libpod_parent/${id}/memory.oom_control`,
        key: "oom_kill",
        hit: { kind: "memory", limitMb: 256 },
      },
      {
        file: `/sys/fs/cgroup/pids/libpod_parent/${id}/pids.events`,
        key: "max",
        hit: { kind: "pids", limit: 64 },
      },
    ]);
  });

  it("reads memory.events and pids.events of the one cgroup on v2", () => {
    const files = counterFiles("0::/machine.slice/libpod-abc.scope/container\n", limits);
    expect(files.map((f) => [f.file, f.key])).toEqual([
      ["/sys/fs/cgroup/machine.slice/libpod-abc.scope/container/memory.events", "oom_kill"],
      ["/sys/fs/cgroup/machine.slice/libpod-abc.scope/container/pids.events", "max"],
    ]);
  });
});

describe("firstCause", () => {
  it("names the process limit when one reading finds both it and memory hit (a fork bomb)", () => {
    const memory = { kind: "memory", limitMb: 128 } as const;
    const pids = { kind: "pids", limit: 512 } as const;
    expect(firstCause([memory, pids])).toEqual(pids);
    expect(firstCause([memory])).toEqual(memory);
    expect(firstCause([])).toBeUndefined();
  });
});
