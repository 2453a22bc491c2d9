import type { Server } from "node:http";
import { BuildOutbox } from "../../services/adapters/queue/build-outbox.js";
import { JobQueue } from "../../services/adapters/queue/bullmq.js";
import { RedisBuildLogs } from "../../services/adapters/store/build-logs.js";
import { RedisStore } from "../../services/adapters/store/redis-store.js";
import { BuildControl } from "../../services/domain/pipeline/build-control.js";
import { TriggerService } from "../../services/domain/pipeline/triggers.js";
import { ToolService } from "../../services/domain/tools/tool-service.js";
import { memoryLogger } from "../../services/platform/logger.js";
import { hashSecret } from "../../services/platform/secrets.js";
import type { RefResolver } from "../../services/ports/refs.js";
import { apiRouter } from "../../services/roles/http/api.js";
import { createApp } from "../../services/roles/http/app.js";
import { randomBytes } from "node:crypto";
import { CryptoBox } from "../../services/platform/crypto-box.js";
import { forgeWebhooks, type ForgeAdapter } from "../../services/roles/webhooks/forge-hooks.js";
import { FORGES } from "../../services/roles/webhooks/forges.js";
import { ToolCache } from "../../services/roles/webhooks/tool-cache.js";
import { redeployWebhook } from "../../services/roles/webhooks/redeploy.js";
import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { startRedis } from "./redis.js";
import { RedisRateLimiter } from "../../services/adapters/ratelimit/redis-rate-limiter.js";

/**
 * The API and webhook surface on a real Redis, without builders: what a test of the HTTP contract
 * needs. Builds are queued for real and can be inspected in the queue.
 */
export async function startHttpApp(
  redisUrl: string,
  refs: RefResolver = { resolve: () => Promise.resolve(undefined) },
  options: {
    webhookRate?: { perTool: number; perAddress: number };
    /** Forges registered besides Slipway's own (a test's adapter). */
    forges?: readonly ForgeAdapter[];
  } = {},
) {
  const logger = memoryLogger();
  const prefix = `t${Math.random().toString(36).slice(2, 8)}`;
  const store = RedisStore.create(redisUrl, { queuePrefix: prefix });
  const queue = JobQueue.create(redisUrl, prefix);
  const outbox = await BuildOutbox.start(redisUrl, queue, logger, prefix);
  const redis = new Redis(redisUrl);
  const logs = RedisBuildLogs.create(redis);
  const urls = { publicUrl: "http://127.0.0.1:8080", webUrl: (t: string) => `http://${t}.localhost:8080/` };
  const box = CryptoBox.fromKey(randomBytes(32));
  const tools = new ToolService(store, urls, box);
  const triggers = new TriggerService(store, logger);
  const adminToken = "sla_test_admin_token";
  const limits = options.webhookRate && {
    limiter: new RedisRateLimiter(redis, `${prefix}:ratelimit`),
    ...options.webhookRate,
  };
  const app = createApp({
    logger,
    rawRouters: [
      forgeWebhooks(
        {
          tools,
          triggers,
          store,
          toolCache: await ToolCache.create(store),
          maxBodyBytes: 64 * 1024,
          limits,
          sources: { ownHost: new URL(urls.publicUrl).host, allowHosts: [] },
        },
        [...FORGES, ...(options.forges ?? [])],
      ),
      redeployWebhook({ tools, triggers, store, refs, limits }),
    ],
    api: apiRouter({
      store,
      tools,
      triggers,
      builds: new BuildControl(store, queue),
      logs,
      refs,
      adminTokenHash: hashSecret(adminToken),
      urls,
    }),
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return {
    url,
    adminToken,
    store,
    queue,
    logger,
    logs,
    outbox,
    /** Resolves once every build accepted so far is in the job queue (it moves there just after the 202). */
    queued: () => outbox.drained(),
    createTool: async (name: string) => tools.create(name),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await outbox.close();
      await queue.close();
      await store.close();
      await redis.quit();
    },
  };
}

/**
 * One test file's HTTP surface: a Redis of its own, `startHttpApp` on it and one tool, started before
 * the file's tests and stopped after them.
 */
export function httpAppWithTool(toolName: string) {
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  let app: Awaited<ReturnType<typeof startHttpApp>> | undefined;
  let tool: Awaited<ReturnType<NonNullable<typeof app>["createTool"]>> | undefined;
  beforeAll(async () => {
    redis = await startRedis();
    app = await startHttpApp(redis.url);
    tool = await app.createTool(toolName);
  });
  afterAll(async () => {
    await app?.close();
    await redis?.stop();
  });
  return {
    get app() {
      return app!;
    },
    get tool() {
      return tool!;
    },
  };
}
