import path from "node:path";
import type { Redis } from "ioredis";
import { ensureHostPackages } from "../../../adapters/host/packages.js";
import { BuildOutbox } from "../../../adapters/queue/build-outbox.js";
import { JobQueue, type Workers } from "../../../adapters/queue/bullmq.js";
import { closeConnection, commandConnection } from "../../../adapters/redis/connection.js";
import { RedisHealth } from "../../../adapters/redis/health.js";
import { RedisServer } from "../../../adapters/redis/server.js";
import { RegistryClient } from "../../../adapters/registry/client.js";
import { RedisBuildLogs } from "../../../adapters/store/build-logs.js";
import { RedisEnvVars } from "../../../adapters/store/redis-envvars.js";
import { RedisJobsStore } from "../../../adapters/store/redis-jobs.js";
import { RedisProcessLogs } from "../../../adapters/store/redis-process-logs.js";
import { RedisStore } from "../../../adapters/store/redis-store.js";
import { EnvVarService } from "../../../domain/envvars/envvar-service.js";
import { JobService } from "../../../domain/jobs/job-service.js";
import { TriggerService } from "../../../domain/pipeline/triggers.js";
import { imageByDigest } from "../../../domain/releases/deployer.js";
import { ToolService } from "../../../domain/tools/tool-service.js";
import type { Config } from "../../../platform/env.js";
import type { Logger } from "../../../platform/logger.js";
import type { BuildBackendFactory, BuildBackendSetup } from "../build-backends/index.js";
import { loadCryptoBox } from "../crypto-key.js";
import { gitlabFeature } from "../gitlab-wiring.js";
import { metricsFeature } from "../metrics-wiring.js";
import type { ProfileFactory, RuntimeProfile } from "../profiles/profile.js";
import { registryFeature } from "../registry-wiring.js";
import { fileSecret } from "../secrets-file.js";
import { sourceAccess } from "../source-access.js";
import type { Shutdown } from "./shutdown.js";

/** What every role of this process uses: the stores, the queue, the registry and the runtime profile. */
export type Shared = Awaited<ReturnType<typeof startShared>>;

/**
 * Starts what all roles need, each piece's closer registered with `shutdown`: Redis (unless outside),
 * the registry, the queue and its outbox, then the runtime profile, the build backend and the domain services.
 */
export async function startShared(
  config: Config,
  logger: Logger,
  shutdown: Shutdown,
  createProfile: ProfileFactory,
  createBuildBackend: BuildBackendFactory,
) {
  await ensureHostPackages(logger, { needRedis: !config.redisUrl });

  let redisUrl = config.redisUrl;
  if (!redisUrl) {
    const server = await RedisServer.start(path.join(config.home, "redis"), config.redisPort, logger);
    shutdown.add(() => server.close());
    redisUrl = server.url;
  }
  // Every request checks it first: while Redis is down the HTTP layer answers 503 at once.
  const health = RedisHealth.start(redisUrl, logger.child({ component: "redis" }));
  shutdown.add(() => health.close());
  const store = RedisStore.create(redisUrl);
  shutdown.add(() => store.close());
  // Auto-pipelining: commands issued in the same tick share one socket write (busy webhook bursts).
  const redis: Redis = commandConnection(redisUrl, { enableAutoPipelining: true });
  shutdown.add(() => closeConnection(redis));
  const images = await registryFeature(config, { redis, logger });
  shutdown.add(() => images.close());
  const registry = RegistryClient.create({
    url: images.endpoint.url,
    username: images.endpoint.username,
    password: images.endpoint.password,
  });
  const logs = RedisBuildLogs.create(redis);
  const queue = JobQueue.create(redisUrl);
  shutdown.add(() => queue.close());
  // Every role moves accepted builds into the queue (one process at a time), so a build a crashed
  // API process accepted is queued by whichever process runs next.
  const outbox = await BuildOutbox.start(redisUrl, queue, logger.child({ component: "outbox" }));
  shutdown.add(() => outbox.close());

  const admin = await fileSecret(path.join(config.home, "admin-token"), "sla");
  const builderSecret = (await fileSecret(path.join(config.home, "builder-secret"), "slb")).value;
  // The home's one key (SLIPWAY_HOME/encryption-key), read once: every secret at rest is sealed with it.
  const box = await loadCryptoBox(config.home);
  const gitlab = gitlabFeature({
    box,
    publicUrl: config.publicUrl,
    redisUrl,
    redis,
    store,
    allowHosts: config.sourceAllowHosts,
    logger,
  });
  // A tool's own repository on Slipway's git remote is read with a builder credential for that tool
  // alone; its linked GitLab project with its deploy token; other repositories with whatever
  // credentials their request carries, from public addresses only (or the operator's allow-list).
  const access = sourceAccess({
    publicUrl: config.publicUrl,
    builderSecret,
    linkedAuth: (tool, url) => gitlab.fetchAuth(tool, url),
  });
  const profile: RuntimeProfile = createProfile(config, {
    store,
    registry: images.endpoint,
    logger,
    closers: shutdown,
  });
  const urls = { publicUrl: config.publicUrl, webUrl: (t: string) => profile.webUrl(t) };
  const tools = new ToolService(store, urls, box);
  const triggers = new TriggerService(store, logger.child({ component: "triggers" }));
  const envvars = new EnvVarService({
    vars: new RedisEnvVars(redis, box),
    store,
    queue,
    logger: logger.child({ component: "envvars" }),
  });
  const jobsStore = RedisJobsStore.create(redis);
  const jobs = new JobService({
    jobs: jobsStore,
    store,
    imageOf: imageByDigest,
    logger: logger.child({ component: "jobs" }),
  });
  // Where builds run, whatever the runtime profile; its sandboxes are read by `build cancel` and recovery.
  const buildBackend: BuildBackendSetup = createBuildBackend(config);
  // Prometheus metrics (metrics-wiring.ts): counted in Redis by every role, served by the API role.
  const metrics = metricsFeature({
    config,
    redisUrl,
    redis,
    store,
    queue,
    registry: images.endpoint,
    profile,
    logger,
  });
  /** Every role's queue workers, closed together (see server.ts for when). */
  const workers: Workers[] = [];
  return {
    config,
    logger,
    closers: shutdown,
    profile,
    redisUrl,
    redis,
    health,
    store,
    images,
    registry,
    logs,
    queue,
    admin,
    box,
    gitlab,
    metrics,
    access,
    urls,
    tools,
    triggers,
    envvars,
    jobsStore,
    jobs,
    reposDir: path.join(config.home, "repos"),
    buildBackend,
    buildSandboxes: buildBackend.sandboxes,
    processLogs: new RedisProcessLogs(redis),
    workers,
  };
}
