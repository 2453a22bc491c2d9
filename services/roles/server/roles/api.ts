import type { Server, ServerResponse } from "node:http";
import type { Express, RequestHandler, Router } from "express";
import { createGitRemote, readDefaultBranch } from "../../../adapters/git/http-backend.js";
import { RemoteRefs } from "../../../adapters/git/remote-refs.js";
import { RedisRateLimiter } from "../../../adapters/ratelimit/redis-rate-limiter.js";
import { BuildControl } from "../../../domain/pipeline/build-control.js";
import { ReleaseService } from "../../../domain/releases/release-service.js";
import { WebserviceService } from "../../../domain/releases/webservice-service.js";
import { hashSecret } from "../../../platform/secrets.js";
import type { RefResolver } from "../../../ports/refs.js";
import { apiRouter } from "../../http/api.js";
import { jobsRouter } from "../../http/api-jobs.js";
import { registryRouter } from "../../http/api-registry.js";
import { releasesApiRouter } from "../../http/api-releases.js";
import { toolDeletionRouter } from "../../http/api-tools-delete.js";
import { webserviceRouter } from "../../http/api-webservice.js";
import { createApp } from "../../http/app.js";
import { gitPushHandler } from "../../http/git-push.js";
import { FrontProxy } from "../../http/proxy.js";
import { forgeReceivers } from "../../webhooks/forges.js";
import { redeployWebhook } from "../../webhooks/redeploy.js";
import { ToolCache } from "../../webhooks/tool-cache.js";
import { notifyFeature } from "../notify-wiring.js";
import { toolDeletion } from "../tool-deletion-wiring.js";
import { dashboardFeature } from "../dashboard-wiring.js";
import { apiProcessId } from "../api-processes.js";
import type { Shared } from "./shared.js";

/**
 * The API role: the HTTP API, webhooks, the git remote and (where the profile wants it) the front
 * proxy, on one port. Returns the address it listens on.
 */
export async function startApiRole(shared: Shared): Promise<string> {
  const { config, logger, closers, profile, store, redis, queue, tools, triggers, access, gitlab } = shared;
  const { reposDir, envvars, buildSandboxes, images } = shared;
  // On a cluster the Ingress serves tools' traffic; the front proxy is for local containers only.
  const proxy = profile.frontProxy
    ? await FrontProxy.create(store, config.webDomain, logger.child({ component: "proxy" }), config.publicUrl)
    : undefined;
  if (proxy) closers.add(() => Promise.resolve(proxy.close()));
  // Notifications (mail, outgoing webhooks): everything is in notify-wiring.ts; only this role runs them.
  const notify = notifyFeature({
    config,
    redisUrl: shared.redisUrl,
    redis,
    box: shared.box,
    store,
    jobs: shared.jobsStore,
    tools,
    envvars,
    logger,
  });
  const git = createGitRemote({
    reposDir,
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
  const webservice = profile.webservice();
  const releases = new ReleaseService({ store, queue, keepReleases: config.keepReleases, logs: shared.logs });
  const webserviceService = new WebserviceService({
    store,
    runtime: webservice.runtime,
    replicas: webservice.replicas,
    cluster: webservice.cluster,
    logs: shared.processLogs,
    marks: shared.processLogs,
    restart: (tool, why, actor, base) => envvars.restart(tool, why, actor, base, "restart"),
  });
  const app = createApp({
    logger,
    proxy,
    readiness: shared.health,
    rawRouters: [
      // First: it counts every webhook delivery's answer, whichever router gives it.
      shared.metrics.deliveries,
      shared.metrics.router(hashSecret(shared.admin.value)),
      (req, res, next) =>
        req.method === "POST" && req.path === "/internal/git-hook" ? git.hookHandler(req, res, next) : next(),
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
      dashboardFeature(shared, { releases, webservice: webserviceService, runtime: webservice.runtime }),
    ],
    api: apiRouter({
      store,
      tools,
      triggers,
      builds: new BuildControl(store, queue, buildSandboxes),
      logs: shared.logs,
      refs,
      adminTokenHash: hashSecret(shared.admin.value),
      urls: shared.urls,
      routers: [
        gitlab.router,
        notify.router,
        releasesApiRouter({ tools, releases }),
        jobsRouter({ tools, jobs: shared.jobs }),
        toolDeletionRouter({
          deletion: toolDeletion(config, {
            redis,
            store,
            builds: new BuildControl(store, queue, buildSandboxes),
            reposDir,
            backend: shared.buildBackend,
            profile,
            registry: images.traces,
            logger,
          }),
        }),
        registryRouter({
          tools,
          access: images.access,
          restart: (tool, why, actor) => envvars.restart(tool, why, actor, undefined, "restart"),
        }),
        webserviceRouter({ tools, webservice: webserviceService }),
      ],
      envvars,
      toolExtras: gitlab.toolExtras,
      forgeLinked: async (tool) => (await gitlab.linkedSourceUrl(tool)) !== undefined,
      renderOptions: profile.renderOptions,
      pullRegistry: images.endpoint.host,
      cluster: profile.cluster,
    }),
  });
  // Commit statuses are posted by the API role: one per deployment, whatever the builders do.
  closers.add(await gitlab.startNotifier());
  closers.add(await notify.start());
  closers.add(await shared.metrics.start());
  const server = await listen(app, config.host, config.port);
  // With SLIPWAY_API_PROCESSES > 1, which worker answered: for operators following one request.
  const processId = apiProcessId();
  if (processId !== undefined) {
    server.prependListener("request", (_req, res: ServerResponse) =>
      res.setHeader("x-slipway-process", processId),
    );
  }
  closers.add(() => closeServer(server));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  const url = `http://${config.host}:${port}`;
  logger.info(
    { url, registry: images.endpoint.host, redis: shared.redisUrl.replace(/:[^:@/]*@/, ":***@") },
    "slipway is listening",
  );
  return url;
}

function gitRouterAt(prefix: string, router: Router): RequestHandler {
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

function listen(app: Express, host: string, port: number): Promise<Server> {
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
