import { setTimeout as sleep } from "node:timers/promises";
import { PipelineError, SlipwayError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { HealthProbe, ProbeResult } from "../../ports/probe.js";
import type { EnvSource } from "../../ports/envvars.js";
import { describeLimit } from "../../ports/limits.js";
import type { AppRuntime, RunningApp } from "../../ports/runtime.js";
import type { BuildStore, ReleaseStore, Route, RouteStore } from "../../ports/store.js";
import { cpus } from "../config/index.js";
import { memoryMb, webComponent } from "../pipeline/app-config.js";
import { DeployOutcome, healthCheckFailure } from "./outcome.js";
import type { Release } from "./release.js";

/** The port every webservice listens on inside its container, given to it as PORT (as Toolforge does). */
export const WEB_PORT = 8000;

export interface DeployerOptions {
  readonly healthTimeoutS: number;
  readonly memoryMb: number;
  /** CPU limit of releases whose config gives no `run.cpu` (SLIPWAY_RUN_CPUS); none: unlimited. */
  readonly cpus?: number | undefined;
  /** How long the old release keeps running after the switch, for requests already in flight. */
  readonly drainMs: number;
  /** Limit of the Procfile `release` process (default 600 s). */
  readonly releasePhaseTimeoutS?: number;
}

/** How the webservice of a release runs: its config's web component, or Slipway's defaults. */
export interface WebSettings {
  readonly port: number;
  readonly memoryMb: number;
  /** CPUs (podman `--cpus`); undefined: unlimited. */
  readonly cpus: number | undefined;
  /** HTTP path that must answer 2xx/3xx; without it a TCP answer is enough. */
  readonly healthPath: string | undefined;
  /** Command line run inside the container (podman exec) that must exit 0, after the port answers. */
  readonly healthScript: string | undefined;
  /** Undefined: the image's default process (the Procfile's `web`). */
  readonly command: string | undefined;
  /** 0: the release has no webservice (a Procfile without `web`); its processes are all jobs. */
  readonly replicas: number;
}

/** Deletes images of old releases after a new one goes live (see releases/retention.ts). */
export interface AfterLive {
  afterLive(release: Release): Promise<void>;
}

/**
 * Rolls a release out without making things worse: the new processes (`run.replicas` of them) start
 * beside the old ones, take traffic only once every one of them answers, and the old ones are stopped
 * only after the switch. A release with a replica that never answers is stopped and marked failed with
 * what the probe saw and that process's last output, and the old release keeps serving.
 */
export class Deployer {
  constructor(
    private readonly deps: {
      readonly store: BuildStore & ReleaseStore & RouteStore;
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
    const outcome = new DeployOutcome({ store, logs }, release);
    const say = outcome.say;
    const fallback = await outcome.fallback();

    const rollback = release.trigger.kind === "rollback";
    await say(
      `===> DEPLOYING release ${release.id} (${release.image_digest.slice(0, 19)})${
        rollback ? `: rollback to release ${release.rollback_of ?? "?"}, no build` : ""
      }`,
    );
    const apps: RunningApp[] = [];
    let lastProbe: string | undefined;
    try {
      const web = webSettings(release, this.deps.options.memoryMb, this.deps.options.cpus);
      for (const line of workerReplicaNotes(release)) await say(line);
      // Migrations and the like run once per build; a rollback runs the old image as it was, without them.
      if (!rollback && release.processes?.includes("release")) await this.releasePhase(release, web, say);
      if (web.replicas === 0) await say(`===> NO WEBSERVICE: ${NO_WEBSERVICE}; its processes run as jobs`);
      if (web.replicas > 1) await say(`===> STARTING ${web.replicas} replicas of the web process`);
      for (let i = 0; i < web.replicas; i++) apps.push(await this.startWeb(release, web, i));
      const many = web.replicas > 1;
      const { results, firstFailed } = await this.waitAllHealthy(apps, signal, web);
      if (firstFailed !== undefined) {
        const failed = results[firstFailed]!;
        lastProbe = many ? `replica ${firstFailed}: ${failed.detail}` : failed.detail;
        const output = await runtime.logs(apps[firstFailed]!.id, 20).catch(() => []);
        const who = many ? `web process (replica ${firstFailed} of ${web.replicas})` : "web process";
        throw new PipelineError(
          "deploy_failed",
          failed.exited
            ? `${who} exited before it answered on port ${web.port}`
            : healthCheckFailure({
                who,
                port: web.port,
                timeoutS: this.deps.options.healthTimeoutS,
                probeDetail: failed.detail,
              }),
          { details: { phase: "deploy", log_tail: output } },
        );
      }
      lastProbe =
        web.replicas === 0
          ? `no webservice (${NO_WEBSERVICE})`
          : many
            ? `${results[0]!.detail} (each of ${web.replicas} replicas)`
            : results[0]!.detail;
      const previous = await store.getRoute(release.tool);
      const live =
        previous && previous.release_id !== release.id
          ? await store.getRelease(previous.release_id)
          : undefined;
      if (live && live.created_at > release.created_at) {
        // Made after this one (an env var change during this rollout) and already live: the newer wins.
        for (const app of apps) await runtime.stop(app.id).catch(() => undefined);
        await outcome.superseded(live);
        return;
      }
      await store.setRoute(routeTo(release, apps));
      await store.updateRelease(release.id, {
        status: "live",
        last_probe: lastProbe,
        finished_at: new Date().toISOString(),
      });
      if (previous && previous.release_id !== release.id) {
        await store.updateRelease(previous.release_id, { status: "superseded" }).catch(() => undefined);
      }
      await outcome.live();
      log.info({ addresses: apps.map((a) => a.address) }, "release live");
      // Requests already forwarded to the old processes finish before they stop.
      await sleep(this.deps.options.drainMs);
      await this.stopOthers(release, new Set(apps.map((a) => a.id)));
      await this.deps.retention
        ?.afterLive(release)
        .catch((e) => log.warn({ error: errorMessage(e) }, "image retention failed"));
      await this.deps
        .onLive?.(release)
        .catch((e) => log.warn({ error: errorMessage(e) }, "jobs of the release could not be updated"));
    } catch (error) {
      for (const app of apps) await runtime.stop(app.id).catch(() => undefined);
      const message = `${errorMessage(error)}; ${fallback}`;
      const tail =
        error instanceof SlipwayError && Array.isArray(error.details?.log_tail) ? error.details.log_tail : [];
      await outcome.failed(message, tail as string[], { last_probe: lastProbe });
      log.warn({ error: message }, "deploy failed");
    }
  }

  /**
   * After a reboot (or anything else that removed containers) the missing replicas of each tool's live
   * release are started again, so "restarting keeps every release" holds for what is served too. The
   * route then lists the replicas that answer (and drops the ones that did not come back).
   */
  async reconcile(tools: readonly string[]): Promise<void> {
    const { store, runtime } = this.deps;
    const running = await runtime.list();
    for (const tool of tools) {
      const route = await store.getRoute(tool);
      if (!route) continue;
      const release = await store.getRelease(route.release_id);
      if (!release) continue;
      const log = this.deps.logger.child({ tool, releaseId: release.id });
      try {
        const web = webSettings(release, this.deps.options.memoryMb, this.deps.options.cpus);
        if (web.replicas === 0) continue;
        const up = running.filter(
          (r) => r.tool === tool && r.process === "web" && r.releaseId === release.id,
        );
        const have = new Set(up.map((r) => r.replica ?? 0));
        const missing = [...Array(web.replicas).keys()].filter((i) => !have.has(i));
        const back: RunningApp[] = [];
        for (const i of missing) {
          const app = await this.startWeb(release, web, i);
          const health = await this.waitHealthy(app, new AbortController().signal, web);
          if (health.ok) {
            back.push(app);
            continue;
          }
          await runtime.stop(app.id);
          log.warn({ replica: i, probe: health.detail }, "replica did not come back after a restart");
        }
        const serving = [...up, ...back].sort((a, b) => (a.replica ?? 0) - (b.replica ?? 0));
        if (serving.length === 0) {
          log.warn({}, "live release did not come back after a restart");
          continue;
        }
        const next = routeTo(release, serving);
        if (missing.length > 0 || !sameUpstreams(route, next)) await store.setRoute(next);
        if (back.length > 0) log.info({ replicas: back.map((a) => a.replica) }, "live release restarted");
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
        cpus: web.cpus,
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
        result.exceeded
          ? `release phase ${describeLimit(result.exceeded)}`
          : result.timedOut
            ? `release phase did not finish within ${timeoutS} s`
            : `release phase exited ${result.code}`
      }`,
      { details: { phase: "deploy", log_tail: result.tail.slice(-20) } },
    );
  }

  private async startWeb(release: Release, web: WebSettings, replica: number): Promise<RunningApp> {
    return this.deps.runtime.start({
      tool: release.tool,
      process: "web",
      releaseId: release.id,
      replica,
      image: imageByDigest(release),
      env: await this.processEnv(release, web),
      port: web.port,
      memoryMb: web.memoryMb,
      cpus: web.cpus,
      command: web.command,
    });
  }

  /**
   * Health-checks every replica at once. The first one to fail (exit, or run out of time) ends the wait
   * for the others: the release fails anyway, and its processes need not be probed to the deadline.
   */
  private async waitAllHealthy(
    apps: readonly RunningApp[],
    signal: AbortSignal,
    web: WebSettings,
  ): Promise<{ results: (ProbeResult & { exited?: boolean })[]; firstFailed: number | undefined }> {
    const giveUp = new AbortController();
    const either = AbortSignal.any([signal, giveUp.signal]);
    let firstFailed: number | undefined;
    const results = await Promise.all(
      apps.map(async (app, i) => {
        const result = await this.waitHealthy(app, either, web);
        if (!result.ok && firstFailed === undefined) {
          firstFailed = i;
          giveUp.abort();
        }
        return result;
      }),
    );
    return { results, firstFailed };
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
  private async stopOthers(release: Release, keep: ReadonlySet<string>): Promise<void> {
    for (const other of await this.deps.runtime.list(release.tool)) {
      if (keep.has(other.id) || other.process !== "web") continue;
      const owner = await this.deps.store.getRelease(other.releaseId);
      if (owner && owner.created_at > release.created_at) continue;
      await this.deps.runtime.stop(other.id);
    }
  }
}

/**
 * The web component's run settings, or the defaults for releases without a config. `defaultCpus` is the
 * CPU limit when the config gives none (the schema's default `cpu` is for Kubernetes, where it is also
 * the request; locally it would be a hard cap at a tenth of a core).
 */
export function webSettings(release: Release, defaultMemoryMb: number, defaultCpus?: number): WebSettings {
  const web = release.config ? webComponent(release.config) : undefined;
  if (!web) {
    return {
      // A config without a webservice comes from a Procfile without `web` (config files must have one).
      // Without a config at all (releases made before configs), the image's default process serves.
      port: WEB_PORT,
      memoryMb: defaultMemoryMb,
      cpus: defaultCpus,
      healthPath: undefined,
      healthScript: undefined,
      command: undefined,
      replicas: release.config ? 0 : 1,
    };
  }
  return {
    port: web.run.port ?? WEB_PORT,
    memoryMb: memoryMb(web.run.memory),
    cpus: web.run.cpu_set ? cpus(web.run.cpu) : defaultCpus,
    healthPath: web.run.health_check_http,
    healthScript: web.run.health_check_script,
    // `web` is what the image runs anyway; anything else goes through the launcher.
    command: web.run.command === "web" ? undefined : web.run.command,
    replicas: web.run.replicas ?? 1,
  };
}

/** Why a release serves nothing; the proxy and `webservice status` say it too. */
export const NO_WEBSERVICE = "its Procfile defines no web process";

/**
 * The route to a release's replicas, in replica order. A release without a webservice gets a route all
 * the same, with no upstreams: it is the live release (jobs, rollback and status follow the route), and
 * the proxy answers why nothing is served.
 */
function routeTo(release: Release, apps: readonly RunningApp[]): Route {
  const first = apps[0]?.address ?? { host: "", port: 0 };
  return {
    tool: release.tool,
    release_id: release.id,
    host: first.host,
    port: first.port,
    upstreams: apps.map((a) => ({ host: a.address.host, port: a.address.port })),
  };
}

function sameUpstreams(a: Route, b: Route): boolean {
  const key = (r: Route) => (r.upstreams ?? [r]).map((u) => `${u.host}:${u.port}`).join(",");
  return a.release_id === b.release_id && key(a) === key(b);
}

/**
 * Continuous components other than the webservice run as jobs, one process each (the job runner
 * supervises one process per job); a config asking for more copies hears so in the build log.
 */
function workerReplicaNotes(release: Release): string[] {
  if (!release.config) return [];
  const web = webComponent(release.config);
  return Object.values(release.config.components)
    .filter((c) => c.name !== web?.name && c.component_type === "continuous" && (c.run.replicas ?? 1) > 1)
    .map(
      (c) =>
        `note: ${c.name} asks for replicas: ${c.run.replicas}; the local profile runs continuous jobs as 1 copy`,
    );
}

export function imageByDigest(release: Release): string {
  const repo = release.image.replace(/:[^/:]+$/, "");
  return `${repo}@${release.image_digest}`;
}
