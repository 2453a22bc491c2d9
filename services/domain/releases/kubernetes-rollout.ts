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
import { PipelineError, errorMessage } from "../../platform/errors.js";
import type { ClusterApplier } from "../../ports/cluster-applier.js";
import type { PullCredentials } from "../../ports/registry-access.js";
import type { Rollout, RolloutPlan, Say } from "../../ports/rollout.js";
import type { AppRuntime } from "../../ports/runtime.js";
import { Deployer, WEB_PORT, imageByDigest, webSettings, type DeployerDeps } from "./deployer.js";
import type { Release } from "./release.js";

export interface KubernetesRolloutOptions {
  readonly render: RenderOptions;
  readonly quota?: Partial<ToolQuota> | undefined;
  /** How long each Deployment may take to roll out (the Deployment's own deadline is 600 s). */
  readonly rolloutTimeoutS: number;
  readonly memoryMb: number;
  /** Between two reads of a Deployment's status; default 2 s (the adapter's). */
  readonly pollMs?: number | undefined;
}

/**
 * The cluster profile's rollout. A release becomes the tool's whole desired state: every component of
 * its config is rendered (webservices, workers, CronJobs, env Secrets). Everything but the CronJobs is
 * applied and every Deployment must roll out; the switch applies the whole set with prune (CronJobs
 * move to the new image, a dropped component's objects are deleted). Kubernetes does the "start
 * beside, take traffic once ready, stop the old one" itself (`maxUnavailable: 0`); a stuck rollout
 * leaves the previous ReplicaSet serving and fails with its pods' report. Before anything is applied,
 * every component's pods are checked against the namespace's LimitRanges and ResourceQuotas (Slipway's
 * and any an operator added): a config they would refuse fails at once, each problem saying what to change.
 */
export class KubernetesRollout implements Rollout {
  readonly releasePhaseLabel = "release process as a Kubernetes Job";

  constructor(
    private readonly deps: {
      readonly cluster: ClusterApplier;
      /** Runs the release phase as a one-off Job (KubernetesRuntime.runOnce). */
      readonly jobs: Pick<AppRuntime, "runOnce">;
      readonly options: KubernetesRolloutOptions;
      /**
       * The tool's registry credential. Rendered as the `registry-pull` Secret that every pod names in
       * `imagePullSecrets`; without it the Secret is not applied and private images cannot be pulled.
       */
      readonly pullCredentials?: ((tool: string) => Promise<PullCredentials>) | undefined;
    },
  ) {}

  where(release: Release): string {
    return ` to Kubernetes namespace ${namespaceName(release.tool)}`;
  }

  async plan(release: Release, vars: Readonly<Record<string, string>>, say: Say): Promise<RolloutPlan> {
    const { cluster, options } = this.deps;
    const namespace = namespaceName(release.tool);
    const { objects, web, runs } = this.render(release, vars, say);
    // Pods the namespace would refuse fail here, before anything is applied, instead of a rollout
    // that waits for pods the API server will never admit.
    await this.checkLimits(release.tool, namespace, [...objects, ...runs], say);
    const pull = await this.deps.pullCredentials?.(release.tool);
    if (pull) {
      // Before anything that starts a pod (the release phase Job included), or it cannot pull its image.
      const secret = renderPullSecret(release.tool, pull);
      await cluster.apply(
        release.tool,
        [...renderNamespace(release.tool, options.quota, options.render), secret],
        {
          prune: false,
        },
      );
      // In the full set too: prune deletes every Slipway object of the tool that is not in it.
      objects.push(secret);
    }
    const settings = webSettings(release, options.memoryMb);
    return {
      releasePhase: (timeoutS, onLine) =>
        this.deps.jobs.runOnce(
          {
            tool: release.tool,
            process: "release",
            releaseId: release.id,
            image: imageByDigest(release),
            env: { ...vars, PORT: String(settings.port) },
            memoryMb: settings.memoryMb,
          },
          "release",
          timeoutS,
          onLine,
        ),
      start: async (signal) => {
        // CronJobs switch to the new image, and dropped components go, only at the switch: a stuck
        // release must not leave its scheduled jobs running the new image.
        const first = objects.filter((o) => o.kind !== "CronJob");
        await cluster.apply(release.tool, first, { prune: false });
        await say(`===> APPLIED ${first.length} objects; waiting for the rollout`);
        for (const o of objects.filter((o) => o.kind === "Deployment")) {
          await cluster.waitForRollout(namespace, o.metadata.name, {
            timeoutS: options.rolloutTimeoutS,
            signal,
            pollMs: options.pollMs,
          });
          await say(`===> ROLLED OUT Deployment ${o.metadata.name}`);
        }
        return {};
      },
      switchOver: async () => {
        await cluster.apply(release.tool, objects, { prune: true });
        return {
          tool: release.tool,
          release_id: release.id,
          // The webservice's Service; the Ingress, not Slipway's proxy, serves the tool's traffic.
          host: web ? `${web.component}.${namespace}.svc` : `${namespace}.svc`,
          port: web?.port ?? WEB_PORT,
        };
      },
      // The Deployments replaced their old pods themselves; prune removed what the release dropped.
      retire: () => Promise.resolve(),
      // A stuck rollout keeps the old ReplicaSet serving; a newer release applied its own objects.
      abandon: () => Promise.resolve(),
    };
  }

  /**
   * Every object the release's components run as, env Secrets included (prune deletes what is not
   * here). One-off components are not applied: a Job runs when applied, and one-offs run on demand.
   */
  private render(
    release: Release,
    vars: Readonly<Record<string, string>>,
    say: Say,
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
    say: Say,
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
}

/** The cluster profile's Deployer: the one deploy routine with the Kubernetes rollout. */
export function deployerOnKubernetes(
  deps: Omit<DeployerDeps, "rollout"> & {
    readonly cluster: ClusterApplier;
    readonly jobs: Pick<AppRuntime, "runOnce">;
    readonly options: KubernetesRolloutOptions & { readonly releasePhaseTimeoutS?: number | undefined };
    readonly pullCredentials?: ((tool: string) => Promise<PullCredentials>) | undefined;
  },
): Deployer {
  const { cluster, jobs, options, pullCredentials, ...rest } = deps;
  return new Deployer({
    ...rest,
    releasePhaseTimeoutS: options.releasePhaseTimeoutS,
    rollout: new KubernetesRollout({ cluster, jobs, options, pullCredentials }),
  });
}
