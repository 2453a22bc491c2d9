import { setTimeout as sleep } from "node:timers/promises";
import { PipelineError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { HealthProbe, ProbeResult } from "../../ports/probe.js";
import type { Rollout, RolloutPlan, Say } from "../../ports/rollout.js";
import type { AppRuntime, RunningApp } from "../../ports/runtime.js";
import type { ReleaseStore, Route } from "../../ports/store.js";
import { webComponent } from "../pipeline/app-config.js";
import {
  Deployer,
  NO_WEBSERVICE,
  imageByDigest,
  webSettings,
  type DeployerDeps,
  type WebSettings,
} from "./deployer.js";
import { healthCheckFailure } from "./outcome.js";
import type { Release } from "./release.js";

export interface PodmanRolloutOptions {
  readonly healthTimeoutS: number;
  readonly memoryMb: number;
  /** CPU limit of releases whose config gives no `run.cpu` (SLIPWAY_RUN_CPUS); none: unlimited. */
  readonly cpus?: number | undefined;
  /** How long the old release keeps running after the switch, for requests already in flight. */
  readonly drainMs: number;
}

/**
 * The local profile's rollout, over the AppRuntime (podman) and a HealthProbe: `run.replicas` web
 * processes start beside the old ones, each must answer (TCP or `health_check_http`, then
 * `health_check_script`), the route lists them all, and the old processes stop after a drain. The
 * config's other components are jobs (the job runner's, after the release is live), not started here.
 */
export class PodmanRollout implements Rollout {
  readonly releasePhaseLabel = "release process";

  constructor(
    private readonly deps: {
      readonly store: ReleaseStore;
      readonly runtime: AppRuntime;
      readonly probe: HealthProbe;
      readonly options: PodmanRolloutOptions;
    },
  ) {}

  where(): string {
    return "";
  }

  async plan(release: Release, vars: Readonly<Record<string, string>>, say: Say): Promise<RolloutPlan> {
    const web = this.web(release);
    for (const line of workerReplicaNotes(release)) await say(line);
    const env = { ...vars, PORT: String(web.port) };
    const { runtime, options } = this.deps;
    const apps: RunningApp[] = [];
    const many = web.replicas > 1;
    return {
      releasePhase: (timeoutS, onLine) =>
        runtime.runOnce(
          {
            tool: release.tool,
            process: "release",
            releaseId: release.id,
            image: imageByDigest(release),
            env,
            memoryMb: web.memoryMb,
            cpus: web.cpus,
          },
          "release",
          timeoutS,
          onLine,
        ),
      start: async (signal) => {
        if (web.replicas === 0) await say(`===> NO WEBSERVICE: ${NO_WEBSERVICE}; its processes run as jobs`);
        if (many) await say(`===> STARTING ${web.replicas} replicas of the web process`);
        const t0 = performance.now();
        for (let i = 0; i < web.replicas; i++) apps.push(await this.startWeb(release, web, env, i));
        const t1 = performance.now();
        const { results, firstFailed } = await this.waitAllHealthy(apps, signal, web);
        if (firstFailed === undefined) {
          // Where a deploy's time goes (the bench prints it): pulling and starting, then the app's own start.
          if (web.replicas > 0)
            await say(
              `Deploy timings: start ${seconds(t1 - t0)} s (image pull, container start), ready ${seconds(performance.now() - t1)} s later`,
            );
          return {
            probe:
              web.replicas === 0
                ? `no webservice (${NO_WEBSERVICE})`
                : many
                  ? `${results[0]!.detail} (each of ${web.replicas} replicas)`
                  : results[0]!.detail,
          };
        }
        const failed = results[firstFailed]!;
        const output = await runtime.logs(apps[firstFailed]!.id, 20).catch(() => []);
        const who = many ? `web process (replica ${firstFailed} of ${web.replicas})` : "web process";
        throw new PipelineError(
          "deploy_failed",
          failed.exited
            ? `${who} exited before it answered on port ${web.port}`
            : healthCheckFailure({
                who,
                port: web.port,
                timeoutS: options.healthTimeoutS,
                probeDetail: failed.detail,
              }),
          {
            details: {
              phase: "deploy",
              log_tail: output,
              last_probe: many ? `replica ${firstFailed}: ${failed.detail}` : failed.detail,
            },
          },
        );
      },
      switchOver: () => Promise.resolve(routeTo(release, apps)),
      retire: async () => {
        // Requests already forwarded to the old processes finish before they stop.
        await sleep(options.drainMs);
        await this.stopOthers(release, new Set(apps.map((a) => a.id)));
      },
      abandon: async () => {
        for (const app of apps.splice(0)) await runtime.stop(app.id).catch(() => undefined);
      },
    };
  }

  /**
   * Starts the live release's replicas that are missing (a reboot removed them); the route then lists
   * the replicas that answer and drops the ones that did not come back.
   */
  async restore(
    release: Release,
    route: Route,
    vars: Readonly<Record<string, string>>,
    log: Logger,
    commit: (next: Route) => Promise<boolean>,
  ): Promise<{ down: number }> {
    const { runtime } = this.deps;
    const web = this.web(release);
    if (web.replicas === 0) return { down: 0 };
    const env = { ...vars, PORT: String(web.port) };
    const up = (await runtime.list(release.tool)).filter(
      (r) => r.process === "web" && r.releaseId === release.id,
    );
    const have = new Set(up.map((r) => r.replica ?? 0));
    const missing = [...Array(web.replicas).keys()].filter((i) => !have.has(i));
    const back: RunningApp[] = [];
    for (const i of missing) {
      const app = await this.startWeb(release, web, env, i);
      const health = await this.waitHealthy(app, new AbortController().signal, web);
      if (health.ok) {
        back.push(app);
        continue;
      }
      await runtime.stop(app.id);
      log.warn({ replica: i, probe: health.detail }, "replica did not come back after a restart");
    }
    const down = missing.length - back.length;
    const serving = [...up, ...back].sort((a, b) => (a.replica ?? 0) - (b.replica ?? 0));
    if (serving.length === 0) {
      log.warn({}, "live release did not come back after a restart");
      return { down };
    }
    const next = routeTo(release, serving);
    if ((missing.length > 0 || !sameUpstreams(route, next)) && !(await commit(next))) {
      // A rollout made another release live while these started: they would serve nothing.
      for (const app of back) await runtime.stop(app.id).catch(() => undefined);
      log.info({}, "a newer release went live meanwhile; the restarted replicas were stopped");
      return { down: 0 };
    }
    if (back.length > 0) log.info({ replicas: back.map((a) => a.replica) }, "live release restarted");
    return { down };
  }

  private web(release: Release): WebSettings {
    return webSettings(release, this.deps.options.memoryMb, this.deps.options.cpus);
  }

  private async startWeb(
    release: Release,
    web: WebSettings,
    env: Readonly<Record<string, string>>,
    replica: number,
  ): Promise<RunningApp> {
    return this.deps.runtime.start({
      tool: release.tool,
      process: "web",
      releaseId: release.id,
      replica,
      image: imageByDigest(release),
      env,
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
    const began = Date.now();
    let listed = began;
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
      // Most apps answer within a second or two of their start: probe often then (a refused connect on
      // loopback costs next to nothing), and less often for slow starters.
      await sleep(Date.now() - began < 2000 ? 25 : 100);
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

/** The local profile's Deployer: the one deploy routine with the podman rollout. */
export function deployerOnPodman(
  deps: Omit<DeployerDeps, "rollout"> & {
    readonly runtime: AppRuntime;
    readonly probe: HealthProbe;
    readonly options: PodmanRolloutOptions & { readonly releasePhaseTimeoutS?: number | undefined };
  },
): Deployer {
  const { runtime, probe, options, ...rest } = deps;
  return new Deployer({
    ...rest,
    releasePhaseTimeoutS: options.releasePhaseTimeoutS,
    rollout: new PodmanRollout({ store: deps.store, runtime, probe, options }),
  });
}

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

function seconds(ms: number): string {
  return (ms / 1000).toFixed(2);
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
