import { PipelineError, SlipwayError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { EnvSource } from "../../ports/envvars.js";
import { describeLimit } from "../../ports/limits.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { Rollout, RolloutPlan, Say } from "../../ports/rollout.js";
import type { BuildStore, ReleaseStore, Route, RouteStore } from "../../ports/store.js";
import { memoryMb, webComponent } from "../pipeline/app-config.js";
import { cpus } from "../config/index.js";
import { DeployOutcome } from "./outcome.js";
import type { Release } from "./release.js";

/** The port every webservice listens on inside its container, given to it as PORT (as Toolforge does). */
export const WEB_PORT = 8000;

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

export interface DeployerDeps {
  readonly store: BuildStore & ReleaseStore & RouteStore;
  /** The runtime's half: podman (podman-rollout.ts) or Kubernetes (kubernetes-rollout.ts). */
  readonly rollout: Rollout;
  readonly logs: BuildLogs;
  readonly logger: Logger;
  /** Limit of the Procfile `release` process (default 600 s). */
  readonly releasePhaseTimeoutS?: number | undefined;
  readonly retention?: AfterLive | undefined;
  /** The tool's environment variables, read at each deploy (never baked into an image). */
  readonly env?: EnvSource | undefined;
  /** Called once a release is live: the jobs of its components config (re)start with its image. */
  readonly onLive?: ((release: Release) => Promise<void>) | undefined;
}

/**
 * The one deploy routine, whatever runs the processes. A release's new processes start beside the old
 * ones and take traffic only once every one is ready; the old ones stop only after the switch. A
 * release that fails (release phase, readiness) leaves the previous one serving, with the reason and
 * the failing process's last output. A release made after this one that is already live is never
 * overtaken: that is checked before anything starts and again just before the switch, because two
 * deploys of a tool can run at once (an env var change or `webservice restart` during a push's rollout).
 */
export class Deployer {
  constructor(private readonly deps: DeployerDeps) {}

  async deploy(releaseId: string, signal: AbortSignal): Promise<void> {
    const { store } = this.deps;
    const release = await store.getRelease(releaseId);
    if (!release) throw new SlipwayError("not_found", `release ${releaseId} does not exist`);
    if (release.status !== "deploying") return;
    const log = this.deps.logger.child({ tool: release.tool, releaseId, buildId: release.build_id });
    const outcome = new DeployOutcome({ store, logs: this.deps.logs }, release);
    const say = outcome.say;
    const fallback = await outcome.fallback();
    const rollback = release.trigger.kind === "rollback";
    await say(
      `===> DEPLOYING release ${release.id} (${release.image_digest.slice(0, 19)})${this.deps.rollout.where(release)}${
        rollback ? `: rollback to release ${release.rollback_of ?? "?"}, no build` : ""
      }`,
    );
    let plan: RolloutPlan | undefined;
    let lastProbe: string | undefined;
    try {
      // Applying an older release over a newer live one would roll the tool backwards.
      if (await this.newerLive(release, outcome)) return;
      plan = await this.deps.rollout.plan(release, await this.varsOf(release.tool), say);
      // Migrations and the like run once per build; a rollback runs the old image as it was, without them.
      if (!rollback && release.processes?.includes("release")) await this.releasePhase(plan, say);
      lastProbe = (await plan.start(signal)).probe;
      if (await this.newerLive(release, outcome)) {
        await plan.abandon();
        return;
      }
      const route = await plan.switchOver();
      const previous = await store.getRoute(release.tool);
      await store.setRoute(route);
      await store.updateRelease(release.id, {
        status: "live",
        last_probe: lastProbe,
        finished_at: new Date().toISOString(),
      });
      if (previous && previous.release_id !== release.id) {
        await store.updateRelease(previous.release_id, { status: "superseded" }).catch(() => undefined);
      }
      await outcome.live();
      log.info({ upstreams: upstreamsOf(route) }, "release live");
      await plan.retire();
      await this.deps.retention
        ?.afterLive(release)
        .catch((e) => log.warn({ err: e }, "image retention failed"));
      await this.deps
        .onLive?.(release)
        .catch((e) => log.warn({ err: e }, "jobs of the release could not be updated"));
    } catch (error) {
      await plan?.abandon().catch(() => undefined);
      // A report that already says what serves (a stuck Kubernetes rollout) keeps its own statement;
      // its further lines (the pods' report) follow the first.
      const [head = "", ...rest] = errorMessage(error).split("\n");
      const message = [/keep serving|were stopped/.test(head) ? head : `${head}; ${fallback}`, ...rest].join(
        "\n",
      );
      const details = error instanceof SlipwayError ? error.details : undefined;
      const tail = Array.isArray(details?.log_tail) ? (details.log_tail as string[]) : [];
      const probe = typeof details?.last_probe === "string" ? details.last_probe : lastProbe;
      await outcome.failed(message, tail, { last_probe: probe });
      log.warn({ error: message }, "deploy failed");
    }
  }

  /**
   * After a reboot (or anything else that removed processes) the runtime brings each tool's live
   * release back where it can (podman; Kubernetes keeps its pods itself), and the route follows.
   */
  async reconcile(tools: readonly string[]): Promise<void> {
    for (const tool of tools) await this.restore(tool);
  }

  /**
   * Starts the tool's live release's missing replicas and routes to the ones that answer; returns how
   * many are still down (0 also where there is nothing to run, or the runtime restores by itself).
   */
  async restore(tool: string): Promise<number> {
    const { store, rollout } = this.deps;
    if (!rollout.restore) return 0;
    const route = await store.getRoute(tool);
    if (!route) return 0;
    const release = await store.getRelease(route.release_id);
    if (!release) return 0;
    const log = this.deps.logger.child({ tool, releaseId: release.id });
    try {
      const commit = (next: Route) => store.replaceRoute(next, release.id);
      return (await rollout.restore(release, route, await this.varsOf(tool), log, commit)).down;
    } catch (error) {
      log.warn({ err: error }, "live release could not be restarted");
      return 1;
    }
  }

  /** The tool's variables, read now (a restart picks up their current values); PORT is the runtime's. */
  private async varsOf(tool: string): Promise<Record<string, string>> {
    const vars = (await this.deps.env?.envFor(tool)) ?? {};
    return Object.fromEntries(Object.entries(vars).filter(([k]) => k !== "PORT"));
  }

  /** True (and the release superseded) when a release made after this one is already live. */
  private async newerLive(release: Release, outcome: DeployOutcome): Promise<boolean> {
    const route = await this.deps.store.getRoute(release.tool);
    if (!route || route.release_id === release.id) return false;
    const live = await this.deps.store.getRelease(route.release_id);
    if (!live || live.created_at <= release.created_at) return false;
    await outcome.superseded(live);
    return true;
  }

  /**
   * The Procfile's `release` process, once, before any traffic moves. Its output goes to the deploy's
   * log; a non-zero exit (or the limit) fails the release and the previous one keeps serving.
   */
  private async releasePhase(plan: RolloutPlan, say: Say): Promise<void> {
    const timeoutS = this.deps.releasePhaseTimeoutS ?? 600;
    await say(`===> RELEASE PHASE: running the Procfile's ${this.deps.rollout.releasePhaseLabel}`);
    let pending = Promise.resolve();
    const result = await plan.releasePhase(timeoutS, (line) => {
      pending = pending.then(() => say(`  | ${line}`));
    });
    await pending;
    if (result.code === 0) {
      await say("===> RELEASE PHASE done");
      return;
    }
    throw new PipelineError(
      "deploy_failed",
      result.exceeded
        ? `release phase ${describeLimit(result.exceeded)}`
        : result.timedOut
          ? `release phase did not finish within ${timeoutS} s`
          : result.code === undefined
            ? "release phase failed"
            : `release phase exited ${result.code}`,
      { details: { phase: "deploy", log_tail: result.tail.slice(-20) } },
    );
  }
}

function upstreamsOf(route: Route): string[] {
  return (route.upstreams ?? [route]).map((u) => `${u.host}:${u.port}`);
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

export function imageByDigest(release: Release): string {
  const repo = release.image.replace(/:[^/:]+$/, "");
  return `${repo}@${release.image_digest}`;
}
