import type { RequestHandler } from "express";
import { PodmanRuntime } from "../../adapters/podman/runtime.js";
import { RedisBuilderRegistry } from "../../adapters/store/redis-builders.js";
import { RedisUsageHistory } from "../../adapters/store/redis-usage.js";
import type { ReleaseService } from "../../domain/releases/release-service.js";
import type { WebserviceService } from "../../domain/releases/webservice-service.js";
import { hashSecret } from "../../platform/secrets.js";
import { dashboardRouter } from "../http/dashboard/router.js";
import type { HealthCheck } from "../http/dashboard/pages.js";
import type { Shared } from "./roles/shared.js";

/** The web dashboard (services/roles/http/dashboard/) over the API role's services. */
export function dashboardFeature(
  shared: Shared,
  services: { releases: ReleaseService; webservice: WebserviceService; runtime: unknown },
): RequestHandler {
  const { releases, webservice, runtime } = services;
  return dashboardRouter({
    store: shared.store,
    tools: shared.tools,
    releases,
    webservice,
    jobs: shared.jobs,
    logs: shared.logs,
    envvars: shared.envvars,
    sessions: shared.redis,
    adminTokenHash: hashSecret(shared.admin.value),
    urls: shared.urls,
    logger: shared.logger.child({ component: "dashboard" }),
    toolExtras: shared.gitlab.toolExtras,
    health: () => health(shared),
    // CPU and memory now: podman's containers only (the cluster profile's pods are not read).
    usage: runtime instanceof PodmanRuntime ? (tool) => runtime.usage(tool) : undefined,
    // The last hour, as the local deployer samples it (profiles/local.ts); the cluster's is not sampled.
    usageHistory: runtime instanceof PodmanRuntime ? new RedisUsageHistory(shared.redis) : undefined,
  });
}

async function health(shared: Shared): Promise<HealthCheck[]> {
  const redisDown = shared.health.check();
  const registry = await fetch(`${shared.images.endpoint.url}/v2/`, { signal: AbortSignal.timeout(3000) })
    .then((res) => ({ ok: res.status === 200 || res.status === 401, detail: `answers HTTP ${res.status}` }))
    .catch((err: unknown) => ({ ok: false, detail: `does not answer: ${(err as Error).message}` }));
  const cluster = shared.profile.cluster?.view();
  const builders = await RedisBuilderRegistry.living(shared.redis).catch(() => undefined);
  return [
    { name: "Redis", ok: !redisDown, detail: redisDown ? redisDown.message : "answers" },
    { name: "Registry", ok: registry.ok, detail: `${shared.images.endpoint.host} ${registry.detail}` },
    cluster
      ? {
          name: "Runtime (Kubernetes)",
          ok: cluster.status === "available",
          detail: [cluster.status, ...cluster.warnings].join("; "),
        }
      : { name: "Runtime", ok: true, detail: "local containers (podman)" },
    {
      name: "Builders",
      ok: (builders?.length ?? 0) > 0,
      detail: builders === undefined ? "unknown" : `${builders.length} with a current heartbeat`,
    },
  ];
}
