import { mkdir } from "node:fs/promises";
import type { Server } from "node:http";
import path from "node:path";
import { ProcessFetcher } from "../../adapters/git/fetch-process.js";
import { createGitRemote, readDefaultBranch } from "../../adapters/git/http-backend.js";
import { RemoteRefs } from "../../adapters/git/remote-refs.js";
import { ensureHostPackages } from "../../adapters/host/packages.js";
import { NetProbe } from "../../adapters/net/probe.js";
import { PodmanRuntime } from "../../adapters/podman/runtime.js";
import { LogFollowingRuntime } from "../../adapters/podman/web-log-follower.js";
import { RedisProcessLogs } from "../../adapters/store/redis-process-logs.js";
import { WebserviceService } from "../../domain/releases/webservice-service.js";
import { webserviceRouter } from "../http/api-webservice.js";
import { BuildOutbox } from "../../adapters/queue/build-outbox.js";
import { JobQueue, type Workers } from "../../adapters/queue/bullmq.js";
import { RedisServer } from "../../adapters/redis/server.js";
import { closeConnection, commandConnection } from "../../adapters/redis/connection.js";
import { RedisHealth } from "../../adapters/redis/health.js";
import { RegistryClient } from "../../adapters/registry/client.js";
import { RedisBuildLogs } from "../../adapters/store/build-logs.js";
import { RedisStore } from "../../adapters/store/redis-store.js";
import { RedisEnvVars } from "../../adapters/store/redis-envvars.js";
import { EnvVarService } from "../../domain/envvars/envvar-service.js";
import { loadCryptoBox } from "./crypto-key.js";
import { BuildControl } from "../../domain/pipeline/build-control.js";
import { BuildPipeline } from "../../domain/pipeline/build-pipeline.js";
import { BuildRecovery } from "../../domain/pipeline/build-recovery.js";
import { PodmanBuildSandboxes } from "../../adapters/podman/sandbox.js";
import { RedisBuilderRegistry } from "../../adapters/store/redis-builders.js";
import { TriggerService } from "../../domain/pipeline/triggers.js";
import { Deployer } from "../../domain/releases/deployer.js";
import { ReleaseService } from "../../domain/releases/release-service.js";
import { ImageRetention } from "../../domain/releases/retention.js";
import { releasesApiRouter } from "../http/api-releases.js";
import { containerOwner } from "../../adapters/podman/confinement.js";
import { ToolNetworks } from "../../adapters/podman/network.js";
import { PodmanJobsRuntime } from "../../adapters/podman/jobs-runtime.js";
import { RedisJobsStore } from "../../adapters/store/redis-jobs.js";
import { JobService } from "../../domain/jobs/job-service.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../../domain/jobs/runner.js";
import { imageByDigest } from "../../domain/releases/deployer.js";
import { newId } from "../../platform/ids.js";
import { jobsRouter } from "../http/api-jobs.js";
import { toolDeletionRouter } from "../http/api-tools-delete.js";
import { toolDeletion } from "./tool-deletion-wiring.js";
import { registryRouter } from "../http/api-registry.js";
import { ToolService } from "../../domain/tools/tool-service.js";
import type { Config } from "../../platform/env.js";
import { errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { RefResolver } from "../../ports/refs.js";
import { hashSecret } from "../../platform/secrets.js";
import { apiRouter } from "../http/api.js";
import { createApp } from "../http/app.js";
import { gitPushHandler } from "../http/git-push.js";
import { FrontProxy } from "../http/proxy.js";
import { forgeReceivers } from "../webhooks/forges.js";
import { ToolCache } from "../webhooks/tool-cache.js";
import { redeployWebhook } from "../webhooks/redeploy.js";
import { RedisRateLimiter } from "../../adapters/ratelimit/redis-rate-limiter.js";
import { buildpackOrder, localBuilder } from "./local-builder.js";
import { StackWaitNotes } from "../../domain/pipeline/stack-wait.js";
import { fileSecret } from "./secrets-file.js";
import { sourceAccess } from "./source-access.js";
import { gitlabFeature } from "./gitlab-wiring.js";
import { notifyFeature } from "./notify-wiring.js";
import { registryFeature } from "./registry-wiring.js";

export type Role = "all" | "api" | "builder" | "deployer";

export interface RunningServer {
  readonly url: string;
  readonly adminToken: string;
  /** True on the first start: the entry point shows the token once. */
  readonly adminTokenCreated: boolean;
  /** Resolves when the stack images are ready and builds can start (builder roles only). */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * `slipway server`: the local stack (Redis, registry, podman stack images) and the roles. With
 * `role: "all"` one process holds the API, webhooks, git remote, front proxy and both workers.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  role: Role = "all",
): Promise<RunningServer> {
  const closers: (() => Promise<void>)[] = [];
  let closing = false;
  const close = async () => {
    closing = true;
    for (const c of closers.reverse())
      await c().catch((e) => logger.warn({ error: errorMessage(e) }, "close failed"));
  };
  try {
    await mkdir(config.home, { recursive: true, mode: 0o700 });
    const runsContainers = role === "all" || role === "builder" || role === "deployer";
    // First, before anything starts: buildpack folders that disagree with buildpacks/order.toml stop it.
    const buildpacks = role === "all" || role === "builder" ? await buildpackOrder(config) : undefined;
    await ensureHostPackages(logger, { needRedis: !config.redisUrl });

    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      const redis = await RedisServer.start(path.join(config.home, "redis"), config.redisPort, logger);
      closers.push(() => redis.close());
      redisUrl = redis.url;
    }
    // Every request checks it first: while Redis is down the HTTP layer answers 503 at once.
    const health = RedisHealth.start(redisUrl, logger.child({ component: "redis" }));
    closers.push(() => health.close());
    const store = RedisStore.create(redisUrl);
    closers.push(() => store.close());
    // Auto-pipelining: commands issued in the same tick share one socket write (busy webhook bursts).
    const redis = commandConnection(redisUrl, { enableAutoPipelining: true });
    closers.push(() => closeConnection(redis));
    const images = await registryFeature(config, { redis, logger });
    closers.push(() => images.close());
    const registryServer = images.endpoint;
    const registry = RegistryClient.create({
      url: registryServer.url,
      username: registryServer.username,
      password: registryServer.password,
    });
    const logs = RedisBuildLogs.create(redis);
    const queue = JobQueue.create(redisUrl);
    closers.push(() => queue.close());
    // Every role moves accepted builds into the queue (one process at a time), so a build a crashed
    // API process accepted is queued by whichever process runs next.
    const outbox = await BuildOutbox.start(redisUrl, queue, logger.child({ component: "outbox" }));
    closers.push(() => outbox.close());

    const admin = await fileSecret(path.join(config.home, "admin-token"), "sla");
    const builderSecret = (await fileSecret(path.join(config.home, "builder-secret"), "slb")).value;
    const gitlab = await gitlabFeature({
      home: config.home,
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
    const urls = {
      publicUrl: config.publicUrl,
      webUrl: (t: string) =>
        config.runtime === "kubernetes"
          ? `${config.kubernetes.tlsSecretName ? "https" : "http"}://${t}.${config.kubernetes.ingressDomain}/`
          : `http://${t}.${config.webDomain}:${config.port}/`,
    };
    const tools = new ToolService(store, urls, await loadCryptoBox(config.home));
    const triggers = new TriggerService(store, logger.child({ component: "triggers" }));
    const envvars = new EnvVarService({
      vars: new RedisEnvVars(redis, await loadCryptoBox(config.home)),
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
    // Notifications (mail, outgoing webhooks): everything is in notify-wiring.ts.
    const notify = await notifyFeature({
      config,
      redisUrl,
      redis,
      store,
      jobs: jobsStore,
      tools,
      envvars,
      logger,
    });
    const reposDir = path.join(config.home, "repos");
    // Build sandboxes run on this machine's podman in both profiles; found by this server's owner label.
    const buildSandboxes = new PodmanBuildSandboxes({
      repoRoot: config.repoRoot,
      owner: containerOwner(config.home, "build"),
    });
    const processLogs = new RedisProcessLogs(redis);
    // The cluster profile's client and adapters, shared by the API (webservice status) and the deployer.
    // Loaded only for the cluster profile: @kubernetes/client-node alone adds about 70 MiB to the
    // server's memory, which the local profile would carry for nothing.
    const kubernetes = config.runtime === "kubernetes" ? await import("./kubernetes-wiring.js") : undefined;
    const cluster = kubernetes?.kubernetesProfile(config, { store, logger });
    // Probed in the background: an unreachable cluster shows in health and `webservice status`, and
    // does not keep the API, git remote and builds from starting.
    cluster?.health.start();
    if (cluster) closers.push(() => cluster.health.close());
    // Each tool's containers on a network of their own (one per server and tool): see ToolNetworks.
    const networks = new ToolNetworks({
      repoRoot: config.repoRoot,
      owner: containerOwner(config.home, "net"),
    });
    const podmanRuntime = () =>
      new PodmanRuntime({
        repoRoot: config.repoRoot,
        registry: {
          host: registryServer.host,
          username: registryServer.username,
          password: registryServer.password,
        },
        namePrefix: containerOwner(config.home, "web"),
        networks,
      });

    let url = config.publicUrl;
    if (role === "all" || role === "api") {
      // On a cluster the Ingress serves tools' traffic; the front proxy is for local containers only.
      const proxy =
        config.runtime === "kubernetes"
          ? undefined
          : await FrontProxy.create(
              store,
              config.webDomain,
              logger.child({ component: "proxy" }),
              config.publicUrl,
            );
      if (proxy) closers.push(() => Promise.resolve(proxy.close()));
      const git = createGitRemote({
        reposDir,
        nodePath: process.execPath,
        logger: logger.child({ component: "git" }),
        hookUrl: `http://127.0.0.1:${config.port}/internal/git-hook`,
        maxPushBytes: config.limits.pushBytes,
        maxRepoBytes: config.limits.repoBytes,
        authorize: async (tool, password, service) =>
          access.isBuilderFetch(tool, password, service) || tools.checkToken(tool, password),
        onPush: gitPushHandler({
          tools,
          triggers,
          publicUrl: config.publicUrl,
          defaultBranch: (tool) => readDefaultBranch(reposDir, tool),
          logger,
        }),
      });
      const outsideRefs = new RemoteRefs(config.sourceAllowHosts);
      const ownRefs = new RemoteRefs([access.ownHost]);
      const refs: RefResolver = {
        resolve: async (url, ref, auth, tool) => {
          const plan = await access.plan(url, auth, tool);
          return (plan.own ? ownRefs : outsideRefs).resolve(url, ref, plan.auth);
        },
      };
      const app = createApp({
        logger,
        proxy,
        readiness: health,
        rawRouters: [
          (req, res, next) =>
            req.method === "POST" && req.path === "/internal/git-hook"
              ? git.hookHandler(req, res, next)
              : next(),
          gitRouterAt("/git", git.router),
          forgeReceivers({
            tools,
            triggers,
            store,
            toolCache: await ToolCache.create(store),
            maxBodyBytes: config.limits.webhookBytes,
            limits: { limiter: new RedisRateLimiter(redis), ...config.webhookRate },
            sources: { ownHost: access.ownHost, allowHosts: config.sourceAllowHosts },
            linkedSourceUrl: (tool) => gitlab.linkedSourceUrl(tool),
          }),
          redeployWebhook({
            tools,
            triggers,
            store,
            refs,
            limits: { limiter: new RedisRateLimiter(redis), ...config.webhookRate },
          }),
        ],
        api: apiRouter({
          store,
          tools,
          triggers,
          builds: new BuildControl(store, queue, buildSandboxes),
          logs,
          refs,
          adminTokenHash: hashSecret(admin.value),
          urls,
          routers: [
            gitlab.router,
            notify.router,
            releasesApiRouter({
              tools,
              releases: new ReleaseService({ store, queue, keepReleases: config.keepReleases, logs }),
            }),
            jobsRouter({ tools, jobs }),
            toolDeletionRouter({
              deletion: toolDeletion(config, {
                redis,
                store,
                builds: new BuildControl(store, queue, buildSandboxes),
                reposDir,
                registryHost: images.endpoint.host,
                logger,
              }),
            }),
            registryRouter({
              tools,
              access: images.access,
              restart: (tool, why, actor) => envvars.restart(tool, why, actor, undefined, "restart"),
            }),
            webserviceRouter({
              tools,
              webservice: new WebserviceService({
                store,
                runtime: cluster?.runtime ?? podmanRuntime(),
                replicas: cluster ? (t, r) => cluster.runtime.replicas(t, r) : undefined,
                cluster: cluster ? () => cluster.health.view() : undefined,
                logs: processLogs,
                marks: processLogs,
                restart: (tool, why, actor, base) => envvars.restart(tool, why, actor, base, "restart"),
              }),
            }),
          ],
          envvars,
          toolExtras: gitlab.toolExtras,
          renderOptions: cluster?.render,
          pullRegistry: images.endpoint.host,
          cluster: cluster?.health,
        }),
      });
      // Commit statuses are posted by the API role: one per deployment, whatever the builders do.
      closers.push(await gitlab.startNotifier());
      closers.push(await notify.start());
      const server = await listen(app, config.host, config.port);
      closers.push(() => closeServer(server));
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : config.port;
      url = `http://${config.host}:${port}`;
      logger.info(
        { url, registry: registryServer.host, redis: redisUrl.replace(/:[^:@/]*@/, ":***@") },
        "slipway is listening",
      );
    }
    let ready: Promise<void> = Promise.resolve();
    // Registered before the workers' closer so that its heartbeat stops after they ended their builds.
    const builders =
      role === "all" || role === "builder" ? await RedisBuilderRegistry.start(redis) : undefined;
    if (builders) closers.push(() => builders.close());
    const workers: Workers[] = [];
    closers.push(async () => {
      await Promise.all(workers.map((w) => w.close()));
    });
    if (runsContainers) {
      // Web processes' output is followed where they are started, and kept in Redis past their containers.
      const runtime = new LogFollowingRuntime(podmanRuntime(), {
        logs: processLogs,
        repoRoot: config.repoRoot,
        logger: logger.child({ component: "web-logs" }),
      });
      closers.push(() => Promise.resolve(runtime.close()));
      if ((role === "all" || role === "deployer") && kubernetes && cluster) {
        const { kubernetesConfigJobs, kubernetesDeployer, kubernetesJobsRuntime, kubernetesWebLogs } =
          kubernetes;
        // Cluster profile: Kubernetes keeps the live release running (no reconcile) and runs a config's
        // continuous and scheduled components as Deployments and CronJobs; the job runner runs the
        // jobs API's jobs and the config's one-off components as Jobs. Builds stay on local podman
        // (docs/kubernetes.md).
        const deployer = kubernetesDeployer(config, cluster, {
          store,
          logs,
          logger,
          env: envvars,
          // Workers and CronJobs run as cluster objects: their jobs are recorded as the cluster's, so
          // the runner leaves them alone and the config-job follower keeps their runs and output.
          onLive: async (release) =>
            void (await jobs.syncRelease(release, { onCluster: ["continuous", "scheduled"] })),
          retention: new ImageRetention({
            store,
            registry,
            keep: config.keepReleases,
            logger: logger.child({ component: "retention" }),
          }),
          pullCredentials: (tool) => images.access.pullCredentials(tool),
        });
        // What needs the cluster starts once it answers: deploys queued meanwhile wait in the queue, and
        // the job runner's recovery (leftover Jobs, lost runs) runs when it can list the cluster's Jobs.
        const onCluster = async () => {
          if (closing) return;
          workers.push(
            queue.startWorkers(
              redisUrl,
              { deploy: (job, ctx) => deployer.deploy(job.release_id, ctx.signal) },
              { deploy: 2 },
              logger,
            ),
          );
          const jobRunner = new JobRunner({
            store: jobsStore,
            runtime: kubernetesJobsRuntime(config, cluster, {
              store,
              runner: containerOwner(config.home, "jobs"),
            }),
            envFor: (tool) => envvars.envFor(tool),
            logger: logger.child({ component: "jobs" }),
            options: { ...DEFAULT_RUNNER_OPTIONS, memoryMb: config.run.memoryMb, owner: newId() },
          });
          await startWhileReachable(cluster.health, () => jobRunner.start(), logger);
          if (closing) return void (await jobRunner.close());
          closers.push(() => jobRunner.close());
          const webLogs = kubernetesWebLogs(cluster, { store, logs: processLogs });
          webLogs.start();
          closers.push(() => webLogs.close());
          const configJobs = kubernetesConfigJobs(cluster, { store, jobs: jobsStore });
          configJobs.start();
          closers.push(() => configJobs.close());
          logger.info({ server: cluster.health.view().server }, "deploys and jobs on Kubernetes started");
        };
        cluster.health
          .reachable()
          .then(onCluster)
          .catch((e: unknown) =>
            logger.error({ error: errorMessage(e) }, "deploys and jobs on Kubernetes could not start"),
          );
      } else if (role === "all" || role === "deployer") {
        const deployer = new Deployer({
          store,
          runtime,
          probe: new NetProbe(),
          logs,
          logger: logger.child({ component: "deployer" }),
          env: envvars,
          onLive: async (release) => void (await jobs.syncRelease(release)),
          retention: new ImageRetention({
            store,
            registry,
            keep: config.keepReleases,
            logger: logger.child({ component: "retention" }),
          }),
          options: {
            healthTimeoutS: config.run.healthTimeoutS,
            memoryMb: config.run.memoryMb,
            cpus: config.run.cpus,
            drainMs: 1000,
          },
        });
        workers.push(
          queue.startWorkers(
            redisUrl,
            { deploy: (job, ctx) => deployer.deploy(job.release_id, ctx.signal) },
            { deploy: 2 },
            logger,
          ),
        );
        const names = (await store.listTools()).map((t) => t.name);
        deployer.reconcile(names).catch((e) => logger.warn({ error: errorMessage(e) }, "reconcile failed"));
        runtime
          .resume()
          .catch((e) => logger.warn({ error: errorMessage(e) }, "web output could not be followed again"));
        // Jobs run where the deployer runs; their definitions are in Redis, so a restart resumes them.
        const jobRunner = new JobRunner({
          store: jobsStore,
          runtime: new PodmanJobsRuntime({
            repoRoot: config.repoRoot,
            registry: {
              host: registryServer.host,
              username: registryServer.username,
              password: registryServer.password,
            },
            namePrefix: containerOwner(config.home, "jobs"),
            networks,
          }),
          envFor: (tool) => envvars.envFor(tool),
          logger: logger.child({ component: "jobs" }),
          options: {
            ...DEFAULT_RUNNER_OPTIONS,
            memoryMb: config.run.memoryMb,
            cpus: config.run.cpus,
            owner: newId(),
          },
        });
        await jobRunner.start();
        closers.push(() => jobRunner.close());
      }
      if (builders) {
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
        ready = (async () => {
          const builder = await localBuilder(
            config,
            logger,
            registry,
            (repository) => images.access.preparePush(repository),
            builders.id,
            (step) => stackWait.step(step),
            buildpacks,
          );
          const recovery = new BuildRecovery({
            store,
            logs,
            builders,
            sandboxes: buildSandboxes,
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
            lifecycle: builder.lifecycle,
            exporter: builder.exporter,
            builders,
            recovery,
            workRoot: path.join(config.home, "work"),
            logger: logger.child({ component: "builder" }),
            timeoutS: config.build.timeoutS,
          });
          workers.push(
            queue.startWorkers(
              redisUrl,
              { build: (job, ctx) => pipeline.run(job.build_id, ctx) },
              { build: config.build.concurrency },
              logger,
              { perGroup: { build: config.build.perTool } },
            ),
          );
          closers.push(startSweeping(recovery, logger));
          logger.info({ builder: builders.id }, "builder ready");
        })();
        ready.catch((e) =>
          logger.error({ error: errorMessage(e) }, "the builder could not start; builds stay queued"),
        );
      }
    }
    return { url, adminToken: admin.value, adminTokenCreated: admin.created, ready, close };
  } catch (error) {
    await close();
    throw error;
  }
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
    what().catch((e: unknown) => logger.warn({ error: errorMessage(e) }, "build recovery sweep failed"));
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

function gitRouterAt(prefix: string, router: import("express").Router): import("express").RequestHandler {
  return (req, res, next) => {
    if (req.path.startsWith(`${prefix}/`)) {
      const original = req.url;
      req.url = req.url.slice(prefix.length);
      router(req, res, (err?: unknown) => {
        req.url = original;
        next(err);
      });
    } else next();
  };
}

function listen(app: import("express").Express, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.once("listening", () => resolve(server));
    server.once("error", reject);
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Runs `start` (work whose first step lists the cluster), again each time the cluster is reachable
 * after a failure: it may go away between the probe that found it and this call.
 */
async function startWhileReachable(
  health: { reachable(): Promise<void> },
  start: () => Promise<void>,
  logger: Logger,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (error) {
      if (attempt === 1)
        logger.warn({ error: errorMessage(error) }, "cluster work failed to start; retrying");
      await new Promise((r) => setTimeout(r, Math.min(30_000, 1000 * 2 ** attempt)));
      await health.reachable();
    }
  }
}
