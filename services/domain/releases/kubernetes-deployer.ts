import { defaultConfigFromProcfile } from "../config/index.js";
import {
  effectivePolicy,
  envChecksum,
  limitProblems,
  namespaceName,
  policyOf,
  renderAll,
  renderEnvSecret,
  renderNamespace,
  renderPullSecret,
  renderWorkload,
  workloadsFromConfig,
  type KubernetesObject,
  type LimitPolicy,
  type RenderOptions,
  type ToolQuota,
  type ToolWorkload,
} from "../kubernetes/index.js";
import { PipelineError, SlipwayError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { EnvSource } from "../../ports/envvars.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { PullCredentials } from "../../ports/registry-access.js";
import type { AppRuntime } from "../../ports/runtime.js";
import type { BuildStore, ReleaseStore, RouteStore } from "../../ports/store.js";
import { WEB_PORT, imageByDigest, webSettings, type AfterLive } from "./deployer.js";
import { DeployOutcome } from "./outcome.js";
import type { Release } from "./release.js";

/**
 * What the Kubernetes deployer needs of a cluster (KubernetesApplier satisfies it). Kept this small so
 * the domain does not know client-node.
 */
export interface ClusterApplier {
  /** Server-side applies a tool's objects; with `prune`, deletes the tool's objects not among them. */
  apply(tool: string, objects: readonly KubernetesObject[], options: { prune: boolean }): Promise<unknown>;
  /** Resolves once the Deployment rolled out; rejects with a report of its new pods when it is stuck. */
  waitForRollout(
    namespace: string,
    name: string,
    options: { timeoutS: number; signal?: AbortSignal | undefined; pollMs?: number | undefined },
  ): Promise<unknown>;
  /**
   * The LimitRanges and ResourceQuotas live in the tool's namespace (an operator's beside Slipway's); none
   * before the namespace exists. Without it the release is checked against the ones Slipway renders only.
   */
  namespacePolicy?(tool: string): Promise<LimitPolicy>;
}

export interface KubernetesDeployerOptions {
  readonly render: RenderOptions;
  readonly quota?: Partial<ToolQuota> | undefined;
  /** How long each Deployment may take to roll out (the Deployment's own deadline is 600 s). */
  readonly rolloutTimeoutS: number;
  /** Limit of the Procfile `release` process (default 600 s). */
  readonly releasePhaseTimeoutS?: number | undefined;
  readonly memoryMb: number;
  /** Between two reads of a Deployment's status; default 2 s (the adapter's). */
  readonly pollMs?: number | undefined;
}

/**
 * The cluster profile's deployer, with the same `deploy(releaseId, signal)` contract as the podman
 * Deployer. A release becomes the tool's whole desired state: every component of its config is
 * rendered (webservices, workers, CronJobs, env Secrets). Everything but the CronJobs is applied, every
 * Deployment must roll out, and then the whole set is applied with prune (CronJobs switch to the new
 * image, a dropped component's objects are deleted) and the release is live. Kubernetes does
 * the "start beside, take traffic once ready, stop the old one" itself (`maxUnavailable: 0`); a rollout
 * that gets stuck leaves the previous ReplicaSet serving, and the release fails with its pods' report.
 * Before anything is applied, every component's pods are checked against the namespace's LimitRanges
 * and ResourceQuotas (Slipway's and any an operator added): a config they would refuse fails at once,
 * each problem's first words saying what to change.
 */
export class KubernetesDeployer {
  constructor(
    private readonly deps: {
      readonly store: BuildStore & ReleaseStore & RouteStore;
      readonly cluster: ClusterApplier;
      /** Runs the release phase as a one-off Job (KubernetesRuntime.runOnce). */
      readonly jobs: Pick<AppRuntime, "runOnce">;
      readonly logs: BuildLogs;
      readonly logger: Logger;
      readonly options: KubernetesDeployerOptions;
      readonly retention?: AfterLive | undefined;
      readonly env?: EnvSource | undefined;
      /**
       * The tool's registry credential. Rendered as the `registry-pull` Secret that every pod names in
       * `imagePullSecrets`; without it the Secret is not applied and private images cannot be pulled.
       */
      readonly pullCredentials?: ((tool: string) => Promise<PullCredentials>) | undefined;
      /** Called once a release is live: its one-off components and the API jobs move to its image. */
      readonly onLive?: ((release: Release) => Promise<void>) | undefined;
    },
  ) {}

  async deploy(releaseId: string, signal: AbortSignal): Promise<void> {
    const { store, logs, options } = this.deps;
    const release = await store.getRelease(releaseId);
    if (!release) throw new SlipwayError("not_found", `release ${releaseId} does not exist`);
    if (release.status !== "deploying") return;
    const log = this.deps.logger.child({ tool: release.tool, releaseId, buildId: release.build_id });
    const outcome = new DeployOutcome({ store, logs }, release);
    const say = outcome.say;
    const fallback = await outcome.fallback();
    const rollback = release.trigger.kind === "rollback";
    const namespace = namespaceName(release.tool);
    await say(
      `===> DEPLOYING release ${release.id} (${release.image_digest.slice(0, 19)}) to Kubernetes namespace ${namespace}${
        rollback ? `: rollback to release ${release.rollback_of ?? "?"}, no build` : ""
      }`,
    );
    try {
      // Applying an older release over a newer live one would roll the tool backwards.
      if (await this.newerLive(release, outcome)) return;
      const vars = await this.envOf(release.tool);
      const { objects, web, runs } = this.render(release, vars, say);
      // Pods the namespace would refuse fail here, before anything is applied, instead of a rollout
      // that waits for pods the API server will never admit.
      await this.checkLimits(release.tool, namespace, [...objects, ...runs], say);
      const pull = await this.deps.pullCredentials?.(release.tool);
      if (pull) {
        // Before anything that starts a pod (the release phase Job included), or it cannot pull its image.
        const secret = renderPullSecret(release.tool, pull);
        await this.deps.cluster.apply(
          release.tool,
          [...renderNamespace(release.tool, options.quota, options.render), secret],
          { prune: false },
        );
        // In the full set too: prune deletes every Slipway object of the tool that is not in it.
        objects.push(secret);
      }
      if (!rollback && release.processes?.includes("release")) await this.releasePhase(release, vars, say);
      // CronJobs switch to the new image, and dropped components go, only once the rollout is done:
      // a stuck release must not leave its scheduled jobs running the new image.
      const first = objects.filter((o) => o.kind !== "CronJob");
      await this.deps.cluster.apply(release.tool, first, { prune: false });
      await say(`===> APPLIED ${first.length} objects; waiting for the rollout`);
      const deployments = objects.filter((o) => o.kind === "Deployment").map((o) => o.metadata.name);
      for (const name of deployments) {
        await this.deps.cluster.waitForRollout(namespace, name, {
          timeoutS: options.rolloutTimeoutS,
          signal,
          pollMs: options.pollMs,
        });
        await say(`===> ROLLED OUT Deployment ${name}`);
      }
      await this.deps.cluster.apply(release.tool, objects, { prune: true });
      const previous = await store.getRoute(release.tool);
      await store.setRoute({
        tool: release.tool,
        release_id: release.id,
        // The webservice's Service; the Ingress, not Slipway's proxy, serves the tool's traffic.
        host: web ? `${web.component}.${namespace}.svc` : `${namespace}.svc`,
        port: web?.port ?? WEB_PORT,
      });
      await store.updateRelease(release.id, { status: "live", finished_at: new Date().toISOString() });
      if (previous && previous.release_id !== release.id) {
        await store.updateRelease(previous.release_id, { status: "superseded" }).catch(() => undefined);
      }
      await outcome.live();
      log.info({ deployments }, "release live on Kubernetes");
      await this.deps.retention
        ?.afterLive(release)
        .catch((e) => log.warn({ error: errorMessage(e) }, "image retention failed"));
      await this.deps
        .onLive?.(release)
        .catch((e) => log.warn({ error: errorMessage(e) }, "jobs of the release could not be updated"));
    } catch (error) {
      // A stuck rollout's report already says what serves (the adapter knows the strategy); its pods'
      // lines follow the first.
      const [head = "", ...rest] = errorMessage(error).split("\n");
      const message = [/keep serving|were stopped/.test(head) ? head : `${head}; ${fallback}`, ...rest].join(
        "\n",
      );
      const tail =
        error instanceof SlipwayError && Array.isArray(error.details?.log_tail) ? error.details.log_tail : [];
      await outcome.failed(message, tail as string[]);
      log.warn({ error: message }, "deploy failed");
    }
  }

  private async newerLive(release: Release, outcome: DeployOutcome): Promise<boolean> {
    const route = await this.deps.store.getRoute(release.tool);
    if (!route || route.release_id === release.id) return false;
    const live = await this.deps.store.getRelease(route.release_id);
    if (!live || live.created_at <= release.created_at) return false;
    await outcome.superseded(live);
    return true;
  }

  /** The tool's variables, read now; PORT is the pod template's, never a secret. */
  private async envOf(tool: string): Promise<Record<string, string>> {
    const vars = (await this.deps.env?.envFor(tool)) ?? {};
    return Object.fromEntries(Object.entries(vars).filter(([k]) => k !== "PORT"));
  }

  /**
   * Every object the release's components run as, env Secrets included (prune deletes what is not
   * here). One-off components are not applied: a Job runs when applied, and one-offs run on demand.
   */
  private render(
    release: Release,
    vars: Record<string, string>,
    say: (line: string) => Promise<void>,
  ): {
    objects: KubernetesObject[];
    web: { component: string; port: number } | undefined;
    /** The one-off components' Jobs: not applied, but checked against the namespace's limits. */
    runs: KubernetesObject[];
  } {
    const config = release.config ?? defaultConfigFromProcfile(["web"]);
    const { workloads, skipped } = workloadsFromConfig(
      release.tool,
      config,
      { id: release.id, commit: release.commit, image: imageByDigest(release), processes: release.processes },
      { procfileDefault: release.config === undefined },
    );
    for (const s of skipped) void say(`note: component ${s.component} is not deployed: ${s.reason}`);
    const names = Object.keys(vars).sort();
    const env = names.length ? { names, checksum: envChecksum(vars) } : undefined;
    const applied: ToolWorkload[] = workloads
      .filter((w) => w.kind !== "one-off")
      .map((w) => (env ? { ...w, env } : w));
    const secrets = env ? applied.map((w) => renderEnvSecret(release.tool, w.component, vars)) : [];
    const objects = [
      ...renderAll(
        { tool: release.tool, quota: this.deps.options.quota, workloads: applied },
        this.deps.options.render,
      ),
      ...secrets,
    ];
    const web = applied.find((w) => w.kind === "continuous-webservice");
    return {
      objects,
      web: web ? { component: web.component, port: web.port ?? WEB_PORT } : undefined,
      runs: workloads
        .filter((w) => w.kind === "one-off")
        .flatMap((w) => renderWorkload(w, this.deps.options.render)),
    };
  }

  /** Throws, naming every problem, when the namespace's limits (rendered and live) would refuse a pod. */
  private async checkLimits(
    tool: string,
    namespace: string,
    objects: readonly KubernetesObject[],
    say: (line: string) => Promise<void>,
  ): Promise<void> {
    let live: LimitPolicy = { limitRanges: [], quotas: [] };
    try {
      live = (await this.deps.cluster.namespacePolicy?.(tool)) ?? live;
    } catch (error) {
      // Not fatal: the rollout still fails within seconds on a pod the API server refuses.
      await say(`note: checked against Slipway's own limits only: ${errorMessage(error)}`);
    }
    const problems = limitProblems(namespace, objects, effectivePolicy(policyOf(objects), live));
    if (problems.length === 0) return;
    throw new PipelineError("deploy_failed", `${problems.join("\n")}\nnothing was applied`, {
      details: { phase: "deploy", problems },
    });
  }

  /**
   * The Procfile's `release` process as a Job of the new image, before anything is applied: a failure
   * leaves the cluster as it was and the previous release serving.
   */
  private async releasePhase(
    release: Release,
    vars: Record<string, string>,
    say: (line: string) => Promise<void>,
  ): Promise<void> {
    const timeoutS = this.deps.options.releasePhaseTimeoutS ?? 600;
    const web = webSettings(release, this.deps.options.memoryMb);
    await say("===> RELEASE PHASE: running the Procfile's release process as a Kubernetes Job");
    const result = await this.deps.jobs.runOnce(
      {
        tool: release.tool,
        process: "release",
        releaseId: release.id,
        image: imageByDigest(release),
        env: { ...vars, PORT: String(web.port) },
        memoryMb: web.memoryMb,
      },
      "release",
      timeoutS,
    );
    if (result.code === 0) {
      // On failure the tail is printed once, with the reason.
      for (const line of result.tail.slice(-20)) await say(`  | ${line}`);
      await say("===> RELEASE PHASE done");
      return;
    }
    throw new PipelineError(
      "deploy_failed",
      `${
        result.timedOut
          ? `release phase Job did not finish within ${timeoutS} s`
          : `release phase Job failed${result.code === undefined ? "" : ` (exit ${result.code})`}`
      }; nothing was applied`,
      { details: { phase: "deploy", log_tail: result.tail.slice(-20) } },
    );
  }
}
