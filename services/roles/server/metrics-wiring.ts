import type { Redis } from "ioredis";
import { METRICS } from "../../adapters/metrics/catalogue.js";
import { metricsOfEvent, phaseOps } from "../../adapters/metrics/event-metrics.js";
import { exposition, type GaugeSample } from "../../adapters/metrics/exposition.js";
import { RedisMetrics } from "../../adapters/metrics/redis-metrics.js";
import { containerOwner } from "../../adapters/podman/confinement.js";
import { toolContainerUsage } from "../../adapters/podman/stats.js";
import type { JobQueue } from "../../adapters/queue/bullmq.js";
import type { RegistryEndpoint } from "./registry-wiring.js";
import { RedisStateEvents } from "../../adapters/store/redis-state-events.js";
import { QUEUE_OF, type QueueJobName } from "../../domain/pipeline/queue-jobs.js";
import type { Config } from "../../platform/env.js";
import type { Logger } from "../../platform/logger.js";
import type { BuildTimingsSink } from "../../ports/build-timings.js";
import type { StateStore } from "../../ports/store.js";
import { metricsRouter, webhookDeliveryCounter } from "../http/metrics.js";
import { FORGES } from "../webhooks/forges.js";
import type { RuntimeProfile } from "./profiles/profile.js";

/**
 * A probe at scrape time answers within this, or its dependency counts as down. The runtime's is three
 * podman calls (two listings and the stats); all stay under Prometheus' default 10 s scrape timeout.
 */
const PROBE_MS = 2_000;
const RUNTIME_PROBE_MS = 5_000;

export interface MetricsFeatureDeps {
  readonly config: Pick<Config, "home" | "repoRoot" | "runtime">;
  readonly redisUrl: string;
  readonly redis: Redis;
  readonly store: StateStore;
  readonly queue: Pick<JobQueue, "counts">;
  readonly registry: RegistryEndpoint;
  readonly profile: Pick<RuntimeProfile, "cluster">;
  readonly logger: Logger;
}

/**
 * Prometheus metrics (docs/operating.md "Metrics"). Outcomes and durations come from the durable
 * state-event stream (consumer group `metrics`, read by one API process at a time) and from the builder's
 * phase clock and the webhook routes, all added to counters in Redis; `/metrics` on any API process reads
 * them, and measures the queue, the dependencies and the tools' containers when it is scraped.
 */
export function metricsFeature(deps: MetricsFeatureDeps) {
  const metrics = new RedisMetrics(deps.redis);
  const logger = deps.logger.child({ component: "metrics" });
  const record = (ops: Parameters<RedisMetrics["record"]>[0]) => {
    metrics.record(ops).catch((error: unknown) => logger.warn({ err: error }, "metrics not recorded"));
  };
  const timings: BuildTimingsSink = { phasesTook: (t) => record(phaseOps(t)) };

  async function gauges(): Promise<GaugeSample[]> {
    const out: GaugeSample[] = [];
    const up = (component: string, ok: boolean) =>
      out.push({ metric: METRICS.up, labels: { component }, value: ok ? 1 : 0 });
    const [redisUp, registryUp, runtimeUp] = await Promise.all([
      probe(PROBE_MS, () => deps.redis.ping()),
      probe(PROBE_MS, async (signal) => {
        const { url, username, password } = deps.registry;
        const res = await fetch(`${url}/v2/`, {
          signal,
          headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}` },
        });
        await res.body?.cancel();
        if (res.status >= 500) throw new Error(`HTTP ${res.status}`);
      }),
      probe(RUNTIME_PROBE_MS, async (signal) => {
        if (deps.config.runtime === "kubernetes") {
          if (deps.profile.cluster?.view().status !== "available") throw new Error("cluster unavailable");
          return;
        }
        const usage = await toolContainerUsage({
          repoRoot: deps.config.repoRoot,
          owners: {
            web: containerOwner(deps.config.home, "web"),
            jobs: containerOwner(deps.config.home, "jobs"),
          },
          signal,
        });
        for (const u of usage) {
          const labels = { tool: u.tool, kind: u.kind, process: u.process };
          out.push({ metric: METRICS.toolCpu, labels, value: u.cpuPercent });
          out.push({ metric: METRICS.toolMemory, labels, value: u.memoryBytes });
        }
      }),
    ]);
    up("redis", redisUp);
    up("registry", registryUp);
    up("runtime", runtimeUp);
    if (redisUp) {
      for (const name of Object.keys(QUEUE_OF) as QueueJobName[]) {
        const counts = await deps.queue.counts(name);
        for (const state of ["waiting", "active", "delayed"])
          out.push({ metric: METRICS.queueJobs, labels: { queue: name, state }, value: counts[state] ?? 0 });
      }
    }
    return out;
  }

  return {
    timings,
    /** Counts webhook deliveries; mount before the webhook routers. */
    deliveries: webhookDeliveryCounter(["redeploy", ...FORGES.map((f) => f.route)], (hook, outcome) =>
      record([{ kind: "count", metric: METRICS.webhookDeliveries, labels: { hook, outcome } }]),
    ),
    router: (adminTokenHash: string) =>
      metricsRouter({
        store: deps.store,
        adminTokenHash,
        scrape: async () => {
          const [snapshot, measured] = await Promise.all([metrics.snapshot(), gauges()]);
          return exposition(snapshot, measured);
        },
      }),

    /** Starts counting state events (API role); returns the closer. */
    async start(): Promise<() => Promise<void>> {
      // From now on: an existing installation's past events are not counted again at first start.
      const events = RedisStateEvents.create(deps.redisUrl, { group: "metrics", from: "new", logger });
      await events.consume(async (event, delivery) => {
        const ops = await metricsOfEvent(event, {
          getBuild: (id) => deps.store.getBuild(id),
          getRelease: (id) => deps.store.getRelease(id),
        });
        // Keyed by the event's id: a redelivered event is counted once.
        await metrics.record(ops, delivery.id);
      });
      return () => events.close();
    },
  };
}

/** Whether `check` resolves within `ms`. */
async function probe(ms: number, check: (signal: AbortSignal) => Promise<unknown>): Promise<boolean> {
  const signal = AbortSignal.timeout(ms);
  try {
    await Promise.race([
      check(signal),
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error))),
    ]);
    return true;
  } catch {
    return false;
  }
}
