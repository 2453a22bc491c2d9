import { readFile } from "node:fs/promises";
import type { LimitExceeded } from "../../ports/limits.js";
import { podman } from "./podman.js";

/** How often the counters are read: a fork bomb fills a small pid limit within a second. */
const POLL_MS = 200;

interface CounterFile {
  readonly file: string;
  /** The `key value` line of the file that counts the events. */
  readonly key: string;
  readonly hit: LimitExceeded;
}

/**
 * Watches the kernel's own counters of a running container's cgroup and reports the first limit it
 * hits: `oom_kill` (memory.oom_control on cgroup v1, memory.events on v2) and `max` (pids.events: a fork
 * refused at the pid limit). Exit code 137 alone cannot tell an OOM kill from any other SIGKILL, and
 * podman 4 with runc and cgroupfs on cgroup v1 never sets State.OOMKilled, so the counters are the one
 * reliable source. The cgroup vanishes when the container stops: callers keep the container alive (an
 * idle PID 1) until they have called `check()` after their command.
 */
export class ContainerLimits {
  private files: CounterFile[] | undefined;
  private exceededLimit: LimitExceeded | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<LimitExceeded | undefined> | undefined;

  private constructor(
    private readonly repoRoot: string,
    private readonly container: string,
    private readonly limits: { readonly memoryMb: number; readonly pids: number },
    /** The container's PID 1 on the host, where the caller knows it without a `podman inspect`. */
    private readonly pid: number | undefined,
  ) {}

  /**
   * Starts polling. At the first limit hit the container is killed: what runs in it ends at once (a
   * `podman exec` returns, `podman wait` answers), and `exceeded` says why.
   */
  static watch(
    repoRoot: string,
    container: string,
    limits: { readonly memoryMb: number; readonly pids: number },
    pid?: number,
  ): ContainerLimits {
    const w = new ContainerLimits(repoRoot, container, limits, pid);
    const tick = () => {
      void w.check().finally(() => {
        if (w.timer && !w.exceededLimit) w.timer = setTimeout(tick, POLL_MS);
      });
    };
    w.timer = setTimeout(tick, 0);
    return w;
  }

  get exceeded(): LimitExceeded | undefined {
    return this.exceededLimit;
  }

  /** Reads the counters now; the limit hit so far, if any. */
  check(): Promise<LimitExceeded | undefined> {
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async read(): Promise<LimitExceeded | undefined> {
    if (this.exceededLimit) return this.exceededLimit;
    this.files ??= await this.locate();
    const hits: LimitExceeded[] = [];
    for (const c of this.files ?? []) {
      // The container is new: any count at all is this container's.
      const value = await readCounter(c.file, c.key);
      if (value !== undefined && value > 0) hits.push(c.hit);
    }
    if (hits.length > 0 && !this.exceededLimit) {
      this.exceededLimit = firstCause(hits);
      this.stop();
      void podman(["kill", this.container], { repoRoot: this.repoRoot, allowFailure: true });
    }
    return this.exceededLimit;
  }

  /** The counter files of the container's cgroups, from its PID 1's /proc/<pid>/cgroup; undefined until it runs. */
  private async locate(): Promise<CounterFile[] | undefined> {
    const pid = this.pid ?? (await this.inspectPid());
    if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return undefined;
    const text = await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => undefined);
    if (text === undefined) return undefined;
    return counterFiles(text, this.limits);
  }

  private async inspectPid(): Promise<number | undefined> {
    const r = await podman(["inspect", "--format", "{{.State.Pid}}", this.container], {
      repoRoot: this.repoRoot,
      allowFailure: true,
    });
    return r.code === 0 ? Number(r.stdout.trim()) : undefined;
  }
}

/**
 * The limit to report when one reading finds several hit. A fork bomb's hundreds of shells also fill a
 * small memory limit, and on a busy machine both counters have moved by the time they are read: the
 * process limit is the cause then, and "ran out of memory" would send the maintainer the wrong way.
 */
export function firstCause(hits: readonly LimitExceeded[]): LimitExceeded | undefined {
  return hits.find((h) => h.kind === "pids") ?? hits[0];
}

/**
 * Where the oom-kill and pid-limit counters of a process's cgroups are, from its `/proc/<pid>/cgroup`:
 * cgroup v1 names each controller's hierarchy (`4:memory:/libpod_parent/libpod-…`), v2 has the one
 * unified line (`0::/…`). On a hybrid machine the v1 controllers are the ones that enforce the limits.
 */
export function counterFiles(
  procCgroup: string,
  limits: { readonly memoryMb: number; readonly pids: number },
): CounterFile[] {
  const v1 = new Map<string, string>();
  let unified: string | undefined;
  for (const line of procCgroup.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    if (m[1] === "") unified = m[2];
    else for (const controller of m[1]!.split(",")) v1.set(controller, m[2]!);
  }
  const memory: LimitExceeded = { kind: "memory", limitMb: limits.memoryMb };
  const pids: LimitExceeded = { kind: "pids", limit: limits.pids };
  const out: CounterFile[] = [];
  const mem = v1.get("memory");
  if (mem !== undefined)
    out.push({ file: `/sys/fs/cgroup/memory${mem}/memory.oom_control`, key: "oom_kill", hit: memory });
  else if (unified !== undefined)
    out.push({ file: `/sys/fs/cgroup${unified}/memory.events`, key: "oom_kill", hit: memory });
  const pid = v1.get("pids");
  if (pid !== undefined) out.push({ file: `/sys/fs/cgroup/pids${pid}/pids.events`, key: "max", hit: pids });
  else if (unified !== undefined)
    out.push({ file: `/sys/fs/cgroup${unified}/pids.events`, key: "max", hit: pids });
  return out;
}

async function readCounter(file: string, key: string): Promise<number | undefined> {
  const text = await readFile(file, "utf8").catch(() => undefined);
  const m = text && new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}
