import path from "node:path";
import { ProcessFetcher } from "../../../adapters/git/fetch-process.js";
import { RedisBuilderRegistry } from "../../../adapters/store/redis-builders.js";
import type { BuildpackOrder } from "../../../domain/lifecycle/buildpack-order.js";
import { BuildPipeline } from "../../../domain/pipeline/build-pipeline.js";
import { BuildRecovery } from "../../../domain/pipeline/build-recovery.js";
import { StackWaitNotes } from "../../../domain/pipeline/stack-wait.js";
import type { Logger } from "../../../platform/logger.js";
import type { Shared } from "./shared.js";

/**
 * This process's entry in the builder registry (its id and heartbeat). Registered before the workers'
 * closer (server.ts), so that its heartbeat stops only after they ended their builds.
 */
export async function registerBuilder(shared: Shared): Promise<RedisBuilderRegistry> {
  const builders = await RedisBuilderRegistry.start(shared.redis);
  shared.closers.add(() => builders.close());
  return builders;
}

/**
 * The builder role: builds with the build backend (SLIPWAY_BUILD_BACKEND) whatever the runtime profile. Resolves when the
 * stack images are ready and the "build" worker runs; until then builds wait in the queue.
 */
export function startBuilderRole(
  shared: Shared,
  builders: RedisBuilderRegistry,
  buildpacks: BuildpackOrder | undefined,
): Promise<void> {
  const { config, logger, store, logs, queue, access, images } = shared;
  const fetcherWith = (allowHosts: readonly string[]) =>
    ProcessFetcher.create({
      entry: path.join(config.repoRoot, "dist/services/adapters/git/fetch-child.js"),
      maxTotalBytes: config.limits.sourceBytes,
      maxFileBytes: Math.min(config.limits.sourceBytes, 100 * 1024 * 1024),
      workDir: path.join(config.home, "tmp"),
      allowHosts,
      logger: logger.child({ component: "fetch" }),
    });
  // Slipway's own host only for a tool's own repository; everything else under the outside rules.
  const ownFetcher = fetcherWith([access.ownHost]);
  const outsideFetcher = fetcherWith(config.sourceAllowHosts);
  const stackWait = new StackWaitNotes(store, logs, logger.child({ component: "stack" }));
  const ready = (async () => {
    const backend = await shared.buildBackend.start({
      logger,
      registry: shared.registry,
      beforePush: (repository) => images.access.preparePush(repository),
      builder: builders.id,
      onStackStep: (step) => stackWait.step(step),
      buildpacks,
      access,
      registryAccount: images.endpoint,
    });
    const recovery = new BuildRecovery({
      store,
      logs,
      builders,
      sandboxes: shared.buildSandboxes,
      queue,
      logger: logger.child({ component: "recovery" }),
    });
    const pipeline = new BuildPipeline({
      store,
      logs,
      queue,
      fetcher: {
        fetch: async (request, dest, signal) => {
          const plan = await access.plan(request.url, request.auth, request.tool);
          return (plan.own ? ownFetcher : outsideFetcher).fetch(
            { ...request, auth: plan.auth },
            dest,
            signal,
          );
        },
      },
      backend,
      builders,
      recovery,
      workRoot: path.join(config.home, "work"),
      logger: logger.child({ component: "builder" }),
      timeoutS: config.build.timeoutS,
      timings: shared.metrics.timings,
    });
    shared.workers.push(
      queue.startWorkers(
        shared.redisUrl,
        { build: (job, ctx) => pipeline.run(job.build_id, ctx) },
        { build: config.build.concurrency },
        logger,
        { perGroup: { build: config.build.perTool } },
      ),
    );
    shared.closers.add(startSweeping(recovery, logger));
    logger.info({ builder: builders.id }, "builder ready");
  })();
  ready.catch((e) => logger.error({ err: e }, "the builder could not start; builds stay queued"));
  return ready;
}

/** How often a builder looks for builds whose builder died (a few Redis reads when there are none). */
const SWEEP_MS = 10_000;

/**
 * Recovers what a dead builder left: the sandboxes at start (a killed server's leftovers), then the
 * builds of every builder whose heartbeat expired, now and every SWEEP_MS (a killed builder's
 * heartbeat outlives it by up to its expiry). Returns the closer.
 */
function startSweeping(recovery: BuildRecovery, logger: Logger): () => Promise<void> {
  const sweep = (what: () => Promise<unknown>) =>
    what().catch((e: unknown) => logger.warn({ err: e }, "build recovery sweep failed"));
  let running = sweep(async () => {
    await recovery.sweepSandboxes();
    await recovery.sweep();
  });
  const timer = setInterval(() => {
    running = running.then(() => sweep(() => recovery.sweep()));
  }, SWEEP_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
