import { setTimeout as sleep } from "node:timers/promises";
import { PipelineError, SlipwayError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { HealthProbe, ProbeResult } from "../../ports/probe.js";
import type { EnvSource } from "../../ports/envvars.js";
import type { AppRuntime, RunningApp } from "../../ports/runtime.js";
import type { StateStore } from "../../ports/store.js";
import { memoryMb, webComponent } from "../pipeline/app-config.js";
import type { Release } from "./release.js";

/** The port every webservice listens on inside its container, given to it as PORT (as Toolforge does). */
export const WEB_PORT = 8000;

export interface DeployerOptions {
  readonly healthTimeoutS: number;
  readonly memoryMb: number;
  /** How long the old release keeps running after the switch, for requests already in flight. */
  readonly drainMs: number;
  /** Limit of the Procfile `release` process (default 600 s). */
  readonly releasePhaseTimeoutS?: number;
}

/** How the webservice of a release runs: its config's web component, or Slipway's defaults. */
export interface WebSettings {
  readonly port: number;
  readonly memoryMb: number;
  /** HTTP path that must answer 2xx/3xx; without it a TCP answer is enough. */
  readonly healthPath: string | undefined;
  /** Command line run inside the container (podman exec) that must exit 0, after the port answers. */
  readonly healthScript: string | undefined;
  /** Undefined: the image's default process (the Procfile's `web`). */
  readonly command: string | undefined;
  readonly replicas: number;
}

/** Deletes images of old releases after a new one goes live (see releases/retention.ts). */
export interface AfterLive {
  afterLive(release: Release): Promise<void>;
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
      readonly retention?: AfterLive;
      /** The tool's environment variables, read at each start (never baked into an image). */
      readonly env?: EnvSource;
      /** Called once a release is live: the jobs of its components config (re)start with its image. */
      readonly onLive?: (release: Release) => Promise<void>;
    },
  ) {}

  async deploy(releaseId: string, signal: AbortSignal): Promise<void> {
    const { store, runtime, logs } = this.deps;
    const release = await store.getRelease(releaseId);
    if (!release) throw new SlipwayError("not_found", `release ${releaseId} does not exist`);
    if (release.status !== "deploying") return;
    const log = this.deps.logger.child({ tool: release.tool, releaseId, buildId: release.build_id });
    const say = (line: string) => logs.append(release.build_id, line).catch(() => undefined);

    const rollback = release.trigger.kind === "rollback";
    await say(
      `===> DEPLOYING release ${release.id} (${release.image_digest.slice(0, 19)})${
        rollback ? `: rollback to release ${release.rollback_of ?? "?"}, no build` : ""
      }`,
    );
    let app: RunningApp | undefined;
    let lastProbe: string | undefined;
    try {
      const web = webSettings(release, this.deps.options.memoryMb);
      if (web.replicas > 1) {
        await say(`note: replicas: ${web.replicas} asked; the local profile runs 1 copy`);
      }
      // Migrations and the like run once per build; a rollback runs the old image as it was, without them.
      if (!rollback && release.processes?.includes("release")) await this.releasePhase(release, web, say);
      app = await this.startWeb(release, web);
      const health = await this.waitHealthy(app, signal, web);
      lastProbe = health.detail;
      if (!health.ok) {
        const output = await runtime.logs(app.id, 20).catch(() => []);
        throw new PipelineError(
          "deploy_failed",
          `${
            health.exited
              ? `web process exited before it answered on port ${web.port}`
              : `web process did not pass its health check within ${this.deps.options.healthTimeoutS} s (last probe: ${health.detail})`
          }; the previous release keeps serving`,
          { details: { phase: "deploy", log_tail: output } },
        );
      }
      const previous = await store.getRoute(release.tool);
      const live =
        previous && previous.release_id !== release.id
          ? await store.getRelease(previous.release_id)
          : undefined;
      if (live && live.created_at > release.created_at) {
        // Made after this one (an env var change during this rollout) and already live: the newer wins.
        await runtime.stop(app.id).catch(() => undefined);
        await store.updateRelease(release.id, {
          status: "superseded",
          reason: `release ${live.id}, made after this one, went live first`,
          finished_at: new Date().toISOString(),
        });
        await say(`===> SUPERSEDED: release ${live.id}, made after this one, is already live`);
        return;
      }
      await store.setRoute({
        tool: release.tool,
        release_id: release.id,
        host: app.address.host,
        port: app.address.port,
      });
      await store.updateRelease(release.id, {
        status: "live",
        last_probe: lastProbe,
        finished_at: new Date().toISOString(),
      });
      if (previous && previous.release_id !== release.id) {
        await store.updateRelease(previous.release_id, { status: "superseded" }).catch(() => undefined);
      }
      await say(`===> LIVE: release ${release.id} serves ${release.tool}`);
      log.info({ address: app.address }, "release live");
      // Requests already forwarded to the old process finish before it stops.
      await sleep(this.deps.options.drainMs);
      await this.stopOthers(release, app.id);
      await this.deps.retention
        ?.afterLive(release)
        .catch((e) => log.warn({ error: errorMessage(e) }, "image retention failed"));
      await this.deps
        .onLive?.(release)
        .catch((e) => log.warn({ error: errorMessage(e) }, "jobs of the release could not be updated"));
    } catch (error) {
      if (app) await runtime.stop(app.id).catch(() => undefined);
      const message = errorMessage(error);
      const tail =
        error instanceof SlipwayError && Array.isArray(error.details?.log_tail) ? error.details.log_tail : [];
      await store.updateRelease(release.id, {
        status: "failed",
        reason: message,
        last_probe: lastProbe,
        log_tail: tail as string[],
        finished_at: new Date().toISOString(),
      });
      // A rollback or env var restart has no build of its own; the build it reuses keeps its story.
      if (!rollback && release.trigger.kind !== "envvars" && release.trigger.kind !== "restart") {
        await store.updateBuild(release.build_id, { reason: `built, but the deploy failed: ${message}` });
      }
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
        const web = webSettings(release, this.deps.options.memoryMb);
        const app = await this.startWeb(release, web);
        const health = await this.waitHealthy(app, new AbortController().signal, web);
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

  /**
   * The environment of the web process, assembled in this one place: the release phase gets the same.
   * The tool's env vars, read now, so a restart picks up their current values; PORT last, it is ours.
   */
  async processEnv(release: Release, web: WebSettings): Promise<Record<string, string>> {
    const vars = (await this.deps.env?.envFor(release.tool)) ?? {};
    return { ...vars, PORT: String(web.port) };
  }

  /**
   * The Procfile's `release` process, once, in a new container of the new image, before any traffic
   * moves. Its output goes to the build log; a non-zero exit (or the timeout) fails the release and the
   * previous one keeps serving.
   */
  private async releasePhase(release: Release, web: WebSettings, say: (line: string) => Promise<void>) {
    const timeoutS = this.deps.options.releasePhaseTimeoutS ?? 600;
    await say("===> RELEASE PHASE: running the Procfile's release process");
    let pending = Promise.resolve();
    const result = await this.deps.runtime.runOnce(
      {
        tool: release.tool,
        process: "release",
        releaseId: release.id,
        image: imageByDigest(release),
        env: await this.processEnv(release, web),
        memoryMb: web.memoryMb,
      },
      "release",
      timeoutS,
      (line) => {
        pending = pending.then(() => say(`  | ${line}`));
      },
    );
    await pending;
    if (result.code === 0) {
      await say("===> RELEASE PHASE done");
      return;
    }
    throw new PipelineError(
      "deploy_failed",
      `${
        result.timedOut
          ? `release phase did not finish within ${timeoutS} s`
          : `release phase exited ${result.code}`
      }; the previous release keeps serving`,
      { details: { phase: "deploy", log_tail: result.tail.slice(-20) } },
    );
  }

  private async startWeb(release: Release, web: WebSettings): Promise<RunningApp> {
    return this.deps.runtime.start({
      tool: release.tool,
      process: "web",
      releaseId: release.id,
      image: imageByDigest(release),
      env: await this.processEnv(release, web),
      port: web.port,
      memoryMb: web.memoryMb,
      command: web.command,
    });
  }

  private async waitHealthy(
    app: RunningApp,
    signal: AbortSignal,
    web: WebSettings,
  ): Promise<ProbeResult & { exited?: boolean }> {
    const deadline = Date.now() + this.deps.options.healthTimeoutS * 1000;
    let last: ProbeResult = { ok: false, detail: "not probed yet" };
    // Probes are cheap and every one saved is time the push waits; asking the runtime whether the
    // process is still there costs a `podman ps`, so that is done once a second.
    let listed = Date.now();
    while (Date.now() < deadline && !signal.aborted) {
      last = await this.deps.probe.probe(app.address, web.healthPath);
      if (last.ok && web.healthScript) {
        const script = await this.deps.runtime.exec(app.id, web.healthScript, 10);
        last = script.ok
          ? { ok: true, detail: `${last.detail}; health_check_script exited 0` }
          : { ok: false, detail: `health_check_script failed: ${script.output || "non-zero exit"}` };
      }
      if (last.ok) return last;
      if (Date.now() - listed >= 1000) {
        listed = Date.now();
        const running = await this.deps.runtime.list(app.tool);
        if (!running.some((r) => r.id === app.id)) return { ok: false, exited: true, detail: last.detail };
      }
      await sleep(100);
    }
    return last;
  }

  /**
   * Stops the web processes of releases made before this one. Two deploys of a tool can overlap (a
   * rollback asked for while the previous rollout still drains): a newer release's process, even one
   * still being health-checked, is never ours to stop — its own rollout stops ours.
   */
  private async stopOthers(release: Release, keepId: string): Promise<void> {
    for (const other of await this.deps.runtime.list(release.tool)) {
      if (other.id === keepId || other.process !== "web") continue;
      const owner = await this.deps.store.getRelease(other.releaseId);
      if (owner && owner.created_at > release.created_at) continue;
      await this.deps.runtime.stop(other.id);
    }
  }
}

/** The web component's run settings, or the defaults for releases without a config. */
export function webSettings(release: Release, defaultMemoryMb: number): WebSettings {
  const web = release.config ? webComponent(release.config) : undefined;
  if (!web) {
    return {
      port: WEB_PORT,
      memoryMb: defaultMemoryMb,
      healthPath: undefined,
      healthScript: undefined,
      command: undefined,
      replicas: 1,
    };
  }
  return {
    port: web.run.port ?? WEB_PORT,
    memoryMb: memoryMb(web.run.memory),
    healthPath: web.run.health_check_http,
    healthScript: web.run.health_check_script,
    // `web` is what the image runs anyway; anything else goes through the launcher.
    command: web.run.command === "web" ? undefined : web.run.command,
    replicas: web.run.replicas ?? 1,
  };
}

export function imageByDigest(release: Release): string {
  const repo = release.image.replace(/:[^/:]+$/, "");
  return `${repo}@${release.image_digest}`;
}
