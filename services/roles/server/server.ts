import { mkdir } from "node:fs/promises";
import type { Server } from "node:http";
import path from "node:path";
import { Redis } from "ioredis";
import { IsomorphicGitFetcher } from "../../adapters/git/fetcher.js";
import { createGitRemote, readDefaultBranch } from "../../adapters/git/http-backend.js";
import { RemoteRefs } from "../../adapters/git/remote-refs.js";
import { ensureHostPackages } from "../../adapters/host/packages.js";
import { NetProbe } from "../../adapters/net/probe.js";
import { PodmanRuntime } from "../../adapters/podman/runtime.js";
import { JobQueue, type Workers } from "../../adapters/queue/bullmq.js";
import { RedisServer } from "../../adapters/redis/server.js";
import { RegistryClient } from "../../adapters/registry/client.js";
import { RegistryServer } from "../../adapters/registry/server.js";
import { RedisBuildLogs } from "../../adapters/store/build-logs.js";
import { RedisStore } from "../../adapters/store/redis-store.js";
import { BuildControl } from "../../domain/pipeline/build-control.js";
import { BuildPipeline } from "../../domain/pipeline/build-pipeline.js";
import { TriggerService } from "../../domain/pipeline/triggers.js";
import { Deployer } from "../../domain/releases/deployer.js";
import { ToolService } from "../../domain/tools/tool-service.js";
import type { Config } from "../../platform/env.js";
import { errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { RefResolver } from "../../ports/refs.js";
import { hashSecret, secretMatches } from "../../platform/secrets.js";
import { apiRouter } from "../http/api.js";
import { createApp } from "../http/app.js";
import { gitPushHandler } from "../http/git-push.js";
import { FrontProxy } from "../http/proxy.js";
import { gitlabWebhooks } from "../webhooks/gitlab.js";
import { redeployWebhook } from "../webhooks/redeploy.js";
import { localBuilder } from "./local-builder.js";
import { fileSecret } from "./secrets-file.js";

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

/** The builder's credential for fetching from Slipway's own git remote; never a tool's token. */
const BUILDER_USER = "slipway-builder";

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
  const close = async () => {
    for (const c of closers.reverse())
      await c().catch((e) => logger.warn({ error: errorMessage(e) }, "close failed"));
  };
  try {
    await mkdir(config.home, { recursive: true, mode: 0o700 });
    const runsContainers = role === "all" || role === "builder" || role === "deployer";
    await ensureHostPackages(logger, { needRedis: !config.redisUrl });

    let redisUrl = config.redisUrl;
    if (!redisUrl) {
      const redis = await RedisServer.start(path.join(config.home, "redis"), config.redisPort);
      closers.push(() => redis.close());
      redisUrl = redis.url;
    }
    const registryServer = await RegistryServer.fromConfig(config);
    closers.push(() => registryServer.close());
    const registry = RegistryClient.create({
      url: registryServer.url,
      username: registryServer.username,
      password: registryServer.password,
    });

    const store = RedisStore.create(redisUrl);
    closers.push(() => store.close());
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
    closers.push(async () => void (await redis.quit()));
    const logs = RedisBuildLogs.create(redis);
    const queue = JobQueue.create(redisUrl);
    closers.push(() => queue.close());

    const admin = await fileSecret(path.join(config.home, "admin-token"), "sla");
    const builderSecret = (await fileSecret(path.join(config.home, "builder-secret"), "slb")).value;
    // Slipway's own git remote is read with the builder credential, never a tool's token; other
    // repositories with whatever credentials their request carries.
    const builderAuth = (url: string, auth?: { username: string; password: string }) =>
      url.startsWith(`${config.publicUrl}/git/`) ? { username: BUILDER_USER, password: builderSecret } : auth;
    const urls = {
      publicUrl: config.publicUrl,
      webUrl: (t: string) => `http://${t}.${config.webDomain}:${config.port}/`,
    };
    const tools = new ToolService(store, urls);
    const triggers = new TriggerService(store, queue, logger.child({ component: "triggers" }));
    const reposDir = path.join(config.home, "repos");

    let url = config.publicUrl;
    if (role === "all" || role === "api") {
      const proxy = await FrontProxy.create(store, config.webDomain, logger.child({ component: "proxy" }));
      closers.push(() => Promise.resolve(proxy.close()));
      const git = createGitRemote({
        reposDir,
        nodePath: process.execPath,
        logger: logger.child({ component: "git" }),
        hookUrl: `http://127.0.0.1:${config.port}/internal/git-hook`,
        authorize: async (tool, password) =>
          secretMatches(password, hashSecret(builderSecret)) || tools.checkToken(tool, password),
        onPush: gitPushHandler({
          tools,
          triggers,
          publicUrl: config.publicUrl,
          defaultBranch: (tool) => readDefaultBranch(reposDir, tool),
          logger,
        }),
      });
      const remoteRefs = new RemoteRefs();
      const refs: RefResolver = {
        resolve: (url, ref, auth) => remoteRefs.resolve(url, ref, builderAuth(url, auth)),
      };
      const app = createApp({
        logger,
        proxy,
        rawRouters: [
          (req, res, next) =>
            req.method === "POST" && req.path === "/internal/git-hook"
              ? git.hookHandler(req, res, next)
              : next(),
          gitRouterAt("/git", git.router),
          gitlabWebhooks({ tools, triggers, store, maxBodyBytes: config.limits.webhookBytes }),
          redeployWebhook({
            tools,
            triggers,
            store,
            refs,
          }),
        ],
        api: apiRouter({
          store,
          tools,
          triggers,
          builds: new BuildControl(store, queue),
          logs,
          refs,
          adminTokenHash: hashSecret(admin.value),
          urls,
        }),
      });
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
    const workers: Workers[] = [];
    closers.push(async () => {
      await Promise.all(workers.map((w) => w.close()));
    });
    if (runsContainers) {
      const runtime = new PodmanRuntime({
        repoRoot: config.repoRoot,
        registry: {
          host: registryServer.host,
          username: registryServer.username,
          password: registryServer.password,
        },
        namePrefix: "slipway",
      });
      if (role === "all" || role === "deployer") {
        const deployer = new Deployer({
          store,
          runtime,
          probe: new NetProbe(),
          logs,
          logger: logger.child({ component: "deployer" }),
          options: {
            healthTimeoutS: config.run.healthTimeoutS,
            memoryMb: config.run.memoryMb,
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
      }
      if (role === "all" || role === "builder") {
        const fetcher = IsomorphicGitFetcher.create({
          maxTotalBytes: config.limits.sourceBytes,
          maxFileBytes: Math.min(config.limits.sourceBytes, 100 * 1024 * 1024),
          workDir: path.join(config.home, "tmp"),
          logger: logger.child({ component: "fetch" }),
        });
        ready = (async () => {
          const builder = await localBuilder(config, logger, registry);
          const pipeline = new BuildPipeline({
            store,
            logs,
            queue,
            fetcher: {
              fetch: (request, dest, signal) =>
                fetcher.fetch({ ...request, auth: builderAuth(request.url, request.auth) }, dest, signal),
            },
            lifecycle: builder.lifecycle,
            exporter: builder.exporter,
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
            ),
          );
          logger.info({}, "builder ready");
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
