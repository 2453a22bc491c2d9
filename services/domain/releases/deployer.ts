import { setTimeout as sleep } from "node:timers/promises";
import { PipelineError, SlipwayError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { HealthProbe, ProbeResult } from "../../ports/probe.js";
import type { AppRuntime, RunningApp } from "../../ports/runtime.js";
import type { StateStore } from "../../ports/store.js";
import type { Release } from "./release.js";

/** The port every webservice listens on inside its container, given to it as PORT (as Toolforge does). */
export const WEB_PORT = 8000;

export interface DeployerOptions {
  readonly healthTimeoutS: number;
  readonly memoryMb: number;
  /** How long the old release keeps running after the switch, for requests already in flight. */
  readonly drainMs: number;
}

/**
 * Rolls a release out without making things worse: the new process starts beside the old one, takes
 * traffic only once it answers, and the old one is stopped only after the switch. A release that never
 * answers is stopped and marked failed with what the probe saw and the process's last output, and the
 * old release keeps serving.
 */
export class Deployer {
  constructor(
    private readonly deps: {
      readonly store: StateStore;
      readonly runtime: AppRuntime;
      readonly probe: HealthProbe;
      readonly logs: BuildLogs;
      readonly logger: Logger;
      readonly options: DeployerOptions;
    },
  ) {}

  async deploy(releaseId: string, signal: AbortSignal): Promise<void> {
    const { store, runtime, logs } = this.deps;
    const release = await store.getRelease(releaseId);
    if (!release) throw new SlipwayError("not_found", `release ${releaseId} does not exist`);
    if (release.status !== "deploying") return;
    const log = this.deps.logger.child({ tool: release.tool, releaseId, buildId: release.build_id });
    const say = (line: string) => logs.append(release.build_id, line).catch(() => undefined);

    await say(`===> DEPLOYING release ${release.id} (${release.image_digest.slice(0, 19)})`);
    let app: RunningApp | undefined;
    try {
      app = await this.startWeb(release);
      const health = await this.waitHealthy(app, signal);
      if (!health.ok) {
        const output = await runtime.logs(app.id, 20).catch(() => []);
        throw new PipelineError(
          "deploy_failed",
          `${
            health.exited
              ? `web process exited before it answered on port ${WEB_PORT}`
              : `web process did not pass its health check within ${this.deps.options.healthTimeoutS} s (last probe: ${health.detail})`
          }; the previous release keeps serving`,
          { details: { phase: "deploy", log_tail: output } },
        );
      }
      const previous = await store.getRoute(release.tool);
      await store.setRoute({
        tool: release.tool,
        release_id: release.id,
        host: app.address.host,
        port: app.address.port,
      });
      await store.updateRelease(release.id, { status: "live", finished_at: new Date().toISOString() });
      if (previous && previous.release_id !== release.id) {
        await store.updateRelease(previous.release_id, { status: "superseded" }).catch(() => undefined);
      }
      await say(`===> LIVE: release ${release.id} serves ${release.tool}`);
      log.info({ address: app.address }, "release live");
      // Requests already forwarded to the old process finish before it stops.
      await sleep(this.deps.options.drainMs);
      await this.stopOthers(release.tool, app.id);
    } catch (error) {
      if (app) await runtime.stop(app.id).catch(() => undefined);
      const message = errorMessage(error);
      const tail =
        error instanceof SlipwayError && Array.isArray(error.details?.log_tail) ? error.details.log_tail : [];
      await store.updateRelease(release.id, {
        status: "failed",
        reason: message,
        finished_at: new Date().toISOString(),
      });
      await store.updateBuild(release.build_id, { reason: `built, but the deploy failed: ${message}` });
      await say(`===> DEPLOY FAILED: ${message}`);
      for (const line of tail as string[]) await say(`  | ${line}`);
      log.warn({ error: message }, "deploy failed");
    }
  }

  /**
   * After a reboot (or anything else that removed containers) the live release of each tool is started
   * again, so "restarting keeps every release" holds for what is served too.
   */
  async reconcile(tools: readonly string[]): Promise<void> {
    const { store, runtime } = this.deps;
    const running = await runtime.list();
    for (const tool of tools) {
      const route = await store.getRoute(tool);
      if (!route || running.some((r) => r.tool === tool && r.releaseId === route.release_id)) continue;
      const release = await store.getRelease(route.release_id);
      if (!release) continue;
      const log = this.deps.logger.child({ tool, releaseId: release.id });
      try {
        const app = await this.startWeb(release);
        const health = await this.waitHealthy(app, new AbortController().signal);
        if (!health.ok) {
          await runtime.stop(app.id);
          log.warn({ probe: health.detail }, "live release did not come back after a restart");
          continue;
        }
        await store.setRoute({
          tool,
          release_id: release.id,
          host: app.address.host,
          port: app.address.port,
        });
        log.info({}, "live release restarted");
      } catch (error) {
        log.warn({ error: errorMessage(error) }, "live release could not be restarted");
      }
    }
  }

  private startWeb(release: Release): Promise<RunningApp> {
    return this.deps.runtime.start({
      tool: release.tool,
      process: "web",
      releaseId: release.id,
      image: imageByDigest(release),
      env: { PORT: String(WEB_PORT) },
      port: WEB_PORT,
      memoryMb: this.deps.options.memoryMb,
    });
  }

  private async waitHealthy(
    app: RunningApp,
    signal: AbortSignal,
  ): Promise<ProbeResult & { exited?: boolean }> {
    const deadline = Date.now() + this.deps.options.healthTimeoutS * 1000;
    let last: ProbeResult = { ok: false, detail: "not probed yet" };
    while (Date.now() < deadline && !signal.aborted) {
      last = await this.deps.probe.probe(app.address);
      if (last.ok) return last;
      const running = await this.deps.runtime.list(app.tool);
      if (!running.some((r) => r.id === app.id)) return { ok: false, exited: true, detail: last.detail };
      await sleep(250);
    }
    return last;
  }

  private async stopOthers(tool: string, keepId: string): Promise<void> {
    for (const other of await this.deps.runtime.list(tool)) {
      if (other.id !== keepId && other.process === "web") await this.deps.runtime.stop(other.id);
    }
  }
}

export function imageByDigest(release: Release): string {
  const repo = release.image.replace(/:[^/:]+$/, "");
  return `${repo}@${release.image_digest}`;
}
