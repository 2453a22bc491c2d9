import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../../../domain/jobs/runner.js";
import { ImageRetention } from "../../../domain/releases/retention.js";
import { newId } from "../../../platform/ids.js";
import { RedisUsageHistory } from "../../../adapters/store/redis-usage.js";
import type { Shared } from "./shared.js";

/**
 * The deployer role: the "deploy" queue's worker and the job runner, on the profile's runtime. Image
 * retention and the worker are the same on every runtime; the profile says when they may start.
 */
export async function startDeployerRole(deps: Shared): Promise<void> {
  const { config, logger, store, queue, envvars, closers, profile } = deps;
  const parts = profile.deployer({
    logs: deps.logs,
    processLogs: deps.processLogs,
    env: envvars,
    jobs: deps.jobs,
    jobsStore: deps.jobsStore,
    retention: new ImageRetention({
      store,
      registry: deps.registry,
      keep: config.keepReleases,
      logger: logger.child({ component: "retention" }),
      local: profile.localImages,
    }),
    pullCredentials: (tool) => deps.images.access.pullCredentials(tool),
    usageHistory: new RedisUsageHistory(deps.redis),
  });
  await parts.whenAvailable(async () => {
    if (closers.closing) return;
    deps.workers.push(
      queue.startWorkers(
        deps.redisUrl,
        { deploy: (job, ctx) => parts.deployer.deploy(job.release_id, ctx.signal) },
        { deploy: 2 },
        logger,
      ),
    );
    await parts.resume();
    const jobRunner = new JobRunner({
      store: deps.jobsStore,
      runtime: parts.jobsRuntime,
      envFor: (tool) => envvars.envFor(tool),
      logger: logger.child({ component: "jobs" }),
      options: { ...DEFAULT_RUNNER_OPTIONS, ...parts.jobLimits, owner: newId() },
    });
    await parts.startJobs(() => jobRunner.start());
    if (closers.closing) return void (await jobRunner.close());
    closers.add(() => jobRunner.close());
    parts.started();
  });
}
