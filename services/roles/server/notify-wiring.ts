import type { Redis } from "ioredis";
import { RedisNotifyStore } from "../../adapters/store/redis-notify.js";
import { RedisStateEvents } from "../../adapters/store/redis-state-events.js";
import { Notifier } from "../../domain/notify/notifier.js";
import { NotifyService } from "../../domain/notify/notify-service.js";
import type { ToolService } from "../../domain/tools/tool-service.js";
import type { CryptoBox } from "../../platform/crypto-box.js";
import type { Config } from "../../platform/env.js";
import type { Logger } from "../../platform/logger.js";
import type { JobsStore } from "../../ports/jobs-store.js";
import type { StateStore } from "../../ports/store.js";
import { notifyRouter } from "../http/api-notify.js";
import { NOTIFY_CHANNELS } from "./notify-channels.js";

export interface NotifyFeatureDeps {
  readonly config: Pick<Config, "smtp" | "publicUrl" | "sourceAllowHosts">;
  readonly redisUrl: string;
  readonly redis: Redis;
  /** The home's key: outgoing webhook secrets are kept encrypted with it. */
  readonly box: CryptoBox;
  readonly store: StateStore;
  readonly jobs: JobsStore;
  readonly tools: ToolService;
  /** A tool's environment: its values are taken out of every message. */
  readonly envvars: { envFor(tool: string): Promise<Record<string, string>> };
  readonly logger: Logger;
  /** Tests shorten these; production: one mail per job per hour, batches looked at every 30 s. */
  readonly windowMs?: number | undefined;
  readonly sweepMs?: number | undefined;
  readonly now?: (() => number) | undefined;
  /** Tests take over a dead consumer's events sooner than the default minute. */
  readonly claimIdleMs?: number | undefined;
  readonly blockMs?: number | undefined;
}

/** Notifications (every channel of notify-channels.ts), assembled for the API role. */
export function notifyFeature(deps: NotifyFeatureDeps) {
  const { smtp, publicUrl } = deps.config;
  const store = new RedisNotifyStore(deps.redis, deps.box);
  const logger = deps.logger.child({ component: "notify" });
  return {
    router: notifyRouter({ tools: deps.tools, notify: new NotifyService(store, smtp !== undefined) }),

    /** Starts telling maintainers; returns the closer. */
    async start(): Promise<() => Promise<void>> {
      const channels = NOTIFY_CHANNELS.flatMap((make) => make({ config: deps.config, store, logger }) ?? []);
      // From the first event the stream holds: a failure while no API process ran is still told.
      const events = RedisStateEvents.create(deps.redisUrl, {
        group: "notifications",
        from: "all",
        logger,
        ...(deps.claimIdleMs ? { claimIdleMs: deps.claimIdleMs } : {}),
        ...(deps.blockMs ? { blockMs: deps.blockMs } : {}),
      });
      const notifier = new Notifier({
        events,
        store,
        channels,
        getBuild: (id) => deps.store.getBuild(id),
        getRelease: (id) => deps.store.getRelease(id),
        getJob: (tool, name) => deps.jobs.getJob(tool, name),
        getRun: (tool, job, id) => deps.jobs.getRun(tool, job, id),
        runLog: async (tool, job, id) => (await deps.jobs.readLog(tool, job, id)).map((l) => l.line),
        secretsOf: async (tool) => Object.values(await deps.envvars.envFor(tool)),
        publicUrl,
        logger,
        windowMs: deps.windowMs,
        sweepMs: deps.sweepMs,
        now: deps.now,
      });
      await notifier.start();
      return async () => {
        await notifier.close();
        for (const channel of channels) await channel.close();
      };
    },
  };
}
