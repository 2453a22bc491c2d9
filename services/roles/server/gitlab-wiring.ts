import type { Redis } from "ioredis";
import { parseGitlabHost } from "../../adapters/gitlab/client.js";
import { GitlabForgeLink } from "../../adapters/gitlab/forge-link.js";
import { GitlabStatusReporter } from "../../adapters/gitlab/status-reporter.js";
import type { RetryPolicy } from "../../adapters/gitlab/retry.js";
import { RedisForgeLinks } from "../../adapters/store/redis-forge-links.js";
import { RedisStateEvents } from "../../adapters/store/redis-state-events.js";
import { GitlabLinkService } from "../../domain/gitlab/link-service.js";
import { isLinkedRepository } from "../../domain/gitlab/repository.js";
import { StatusNotifier } from "../../domain/gitlab/status-notifier.js";
import type { CryptoBox } from "../../platform/crypto-box.js";
import type { Logger } from "../../platform/logger.js";
import type { StateStore } from "../../ports/store.js";
import { gitlabApiRouter } from "../http/api-gitlab.js";

export interface GitlabFeatureDeps {
  /** The home's one key (SLIPWAY_HOME/encryption-key): losing it means linking every tool again. */
  readonly box: CryptoBox;
  readonly publicUrl: string;
  readonly redisUrl: string;
  readonly redis: Redis;
  readonly store: StateStore;
  readonly logger: Logger;
  /** Hosts GitLab may be on although not public (`SLIPWAY_SOURCE_ALLOW_HOSTS`). */
  readonly allowHosts: readonly string[];
  /** Tests shorten GitLab retries; production uses the reporter's defaults (5 tries, ≤ 30 s). */
  readonly retry?: Partial<RetryPolicy> | undefined;
}

/**
 * GitLab linking, commit statuses and deploy-token fetches, assembled for `startServer`: the one place
 * that knows which adapters back them.
 */
export function gitlabFeature(deps: GitlabFeatureDeps) {
  const { box } = deps;
  const links = new RedisForgeLinks(deps.redis, box);
  const logger = deps.logger.child({ component: "gitlab" });
  const service = new GitlabLinkService({
    store: deps.store,
    links,
    forgeFor: ({ host, token }) => ({
      forge: GitlabForgeLink.create({ host, token, allowHosts: deps.allowHosts, logger, retry: deps.retry }),
      host: parseGitlabHost(host),
    }),
    publicUrl: deps.publicUrl,
    logger,
    box,
  });

  return {
    links,
    router: gitlabApiRouter(service),
    toolExtras: async (tool: string) => ({ gitlab: await service.status(tool) }),

    /**
     * The deploy token of a tool's link, for a fetch of that tool's build from its linked project only:
     * a tool cannot borrow another tool's token by pointing its source at that tool's project.
     */
    async fetchAuth(tool: string | undefined, url: string) {
      if (tool === undefined) return undefined;
      const link = await links.get(tool);
      if (link === undefined || !isLinkedRepository(link, url)) return undefined;
      return { username: link.deploy_token_username, password: link.deploy_token };
    },

    /** The linked project's clone URL as GitLab's API gave it: what a linked tool always builds from. */
    async linkedSourceUrl(tool: string): Promise<string | undefined> {
      return (await links.get(tool))?.http_url;
    },

    /** Starts posting commit statuses; returns the closer. */
    async startNotifier(): Promise<() => Promise<void>> {
      // From the first event the stream holds: what happened while no API process ran is posted now.
      const events = RedisStateEvents.create(deps.redisUrl, {
        group: "gitlab-statuses",
        from: "all",
        logger,
      });
      const notifier = new StatusNotifier({
        events,
        links,
        getBuild: (id) => deps.store.getBuild(id),
        reporterFor: (link) =>
          GitlabStatusReporter.create({
            host: link.gitlab_url,
            token: link.access_token,
            allowHosts: deps.allowHosts,
            logger,
            retry: deps.retry,
          }),
        logUrl: (id) => `${deps.publicUrl}/api/v1/builds/${id}/logs`,
        logger,
      });
      await notifier.start();
      // Reports still retrying at shutdown are not waited for: their events stay unacknowledged and
      // another API process (or this one, restarted) posts them after the claim idle time.
      return () => events.close();
    },
  };
}
