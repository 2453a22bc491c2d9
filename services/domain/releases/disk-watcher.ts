import type { Logger } from "../../platform/logger.js";
import type { ProcessLogs } from "../../ports/process-logs.js";
import type { WrittenLayer, WrittenLayers } from "../../ports/runtime.js";

const MIB = 1024 * 1024;

/**
 * Keeps a tool from filling the machine's disk through its container's own filesystem: locally the
 * writable layers are plain directories on the host's ext4 (no quota), so, as the kubelet does with
 * `ephemeral-storage`, a container that has written more than the limit is stopped. A web process is
 * then brought back by the WebKeeper on a fresh filesystem, with this note before its exit in
 * `webservice logs`; a job run ends (its exit recorded as any other).
 */
export class DiskWatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly deps: {
      readonly layers: WrittenLayers;
      readonly logs: Pick<ProcessLogs, "append">;
      readonly logger: Logger;
      readonly limitMb: number;
      /** Between two measurements; measuring walks each container's written files. */
      readonly intervalMs?: number | undefined;
    },
  ) {}

  start(): void {
    if (this.timer || this.closed) return;
    const every = this.deps.intervalMs ?? 30_000;
    const loop = () => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        if (!this.closed) this.timer = setTimeout(loop, every).unref();
      });
    };
    this.timer = setTimeout(loop, every).unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running;
  }

  async tick(): Promise<void> {
    let layers: WrittenLayer[];
    try {
      layers = await this.deps.layers.measure();
    } catch (err) {
      this.deps.logger.warn({ err }, "containers' written files could not be measured");
      return;
    }
    const limit = this.deps.limitMb * MIB;
    for (const c of layers) {
      if (this.closed || c.bytes <= limit) continue;
      const what = c.kind === "web" ? `web replica ${c.replica}` : `job ${c.process}`;
      const line = `slipway: ${what} wrote ${mib(c.bytes)} to its own filesystem, over the ${this.deps.limitMb} MiB limit (SLIPWAY_RUN_DISK_MB): stopped; write large files elsewhere (a database, object storage)`;
      this.deps.logger.warn(
        { tool: c.tool, kind: c.kind, process: c.process, bytes: c.bytes },
        "container over its disk limit",
      );
      if (c.releaseId) {
        await this.deps.logs.append(c.tool, c.releaseId, [line]).catch((err) => {
          this.deps.logger.warn({ err, tool: c.tool }, "disk note could not be kept");
        });
      }
      await this.deps.layers.stop(c.id).catch((err) => {
        this.deps.logger.warn({ err, tool: c.tool }, "container over its disk limit could not be stopped");
      });
    }
  }
}

function mib(bytes: number): string {
  return `${Math.round(bytes / MIB)} MiB`;
}
