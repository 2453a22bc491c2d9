import { z } from "zod";
import type { Logger } from "../../platform/logger.js";
import type { DeployToken, ForgeLink, ForgeProject, ForgeProjectRef } from "../../ports/forge.js";
import { gitlabApi, type GitlabApi, type GitlabConnection } from "./client.js";
import { classifyGitlabError, isTransient, toSlipwayError, type CallContext } from "./errors.js";
import { RetriesExhausted, retryPolicy, withRetry, type RetryPolicy } from "./retry.js";

/** The fields of `GET /projects/:id` Slipway keeps; gitbeaker's types for them are loose. */
const projectShape = z.object({
  id: z.number().int(),
  path_with_namespace: z.string(),
  http_url_to_repo: z.string(),
  web_url: z.string(),
  default_branch: z.string().nullable().optional(),
});

/**
 * Only push and tag push events. GitLab enables `push_events` by default and every other event is off by
 * default today, but the others are sent as `false` explicitly so a changed default cannot start sending
 * Slipway issues or merge requests.
 */
const HOOK_EVENTS = {
  pushEvents: true,
  tagPushEvents: true,
  issuesEvents: false,
  confidentialIssuesEvents: false,
  mergeRequestsEvents: false,
  noteEvents: false,
  confidentialNoteEvents: false,
  jobEvents: false,
  pipelineEvents: false,
  wikiPageEvents: false,
  deploymentEvents: false,
  releasesEvents: false,
} as const;

export interface GitlabForgeLinkOptions extends GitlabConnection {
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy> | undefined;
}

/** ForgeLink on GitLab's REST API (project hooks, deploy tokens), through @gitbeaker/rest. */
export class GitlabForgeLink implements ForgeLink {
  private constructor(
    private readonly api: GitlabApi,
    private readonly host: string,
    private readonly retry: RetryPolicy,
    private readonly logger: Logger,
  ) {}

  static create(options: GitlabForgeLinkOptions): GitlabForgeLink {
    const { api, host } = gitlabApi(options);
    return new GitlabForgeLink(api, host, retryPolicy(options.retry), options.logger.child({ gitlab: host }));
  }

  async describeProject(project: ForgeProjectRef): Promise<ForgeProject> {
    const raw = await this.call({ project, action: "read the project", role: "Reporter" }, () =>
      this.api.Projects.show(project),
    );
    const p = projectShape.parse(raw);
    return {
      id: p.id,
      pathWithNamespace: p.path_with_namespace,
      httpUrl: p.http_url_to_repo,
      webUrl: p.web_url,
      // An empty repository has no default branch yet.
      defaultBranch: p.default_branch || undefined,
    };
  }

  async registerHook(project: ForgeProjectRef, url: string, secret: string): Promise<number> {
    const options = { ...HOOK_EVENTS, enableSslVerification: true, token: secret };
    const ctx = { project, action: "register the webhook", role: "Maintainer" } as const;
    // Linking twice (or retrying after a lost response) updates the hook instead of adding a second one.
    const hooks = await this.call({ ...ctx, action: "list the webhooks" }, () =>
      this.api.ProjectHooks.all(project),
    );
    const existing = hooks.find((h) => h.url === url);
    if (existing !== undefined) {
      await this.call(ctx, () => this.api.ProjectHooks.edit(project, existing.id, url, options));
      this.logger.info({ project, hook_id: existing.id }, "gitlab webhook updated");
      return existing.id;
    }
    const hook = await this.call(ctx, () => this.api.ProjectHooks.add(project, url, options));
    this.logger.info({ project, hook_id: hook.id }, "gitlab webhook registered");
    return hook.id;
  }

  async createDeployToken(project: ForgeProjectRef, name: string): Promise<DeployToken> {
    const created = await this.call({ project, action: "create a deploy token", role: "Maintainer" }, () =>
      this.api.DeployTokens.create(name, ["read_repository"], { projectId: project }),
    );
    this.logger.info(
      { project, deploy_token_id: created.id, username: created.username },
      "gitlab deploy token created",
    );
    return { id: created.id, username: created.username, token: created.token };
  }

  async unlink(
    project: ForgeProjectRef,
    hookId: number | undefined,
    deployTokenId: number | undefined,
  ): Promise<void> {
    // Both are attempted even if one fails, so a second unlink only has the failed half left to do.
    const results = await Promise.allSettled([
      hookId === undefined
        ? Promise.resolve()
        : this.removeIfPresent({ project, action: "remove the webhook", role: "Maintainer" }, () =>
            this.api.ProjectHooks.remove(project, hookId),
          ),
      deployTokenId === undefined
        ? Promise.resolve()
        : this.removeIfPresent({ project, action: "revoke the deploy token", role: "Maintainer" }, () =>
            this.api.DeployTokens.remove(deployTokenId, { projectId: project }),
          ),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    this.logger.info({ project, hook_id: hookId, deploy_token_id: deployTokenId }, "gitlab project unlinked");
  }

  /** A 404 on removal means it is already gone (or the project is): the goal is reached. */
  private async removeIfPresent(ctx: Omit<CallContext, "host">, fn: () => Promise<unknown>): Promise<void> {
    try {
      await this.call(ctx, fn);
    } catch (error) {
      if (
        error instanceof Error &&
        (error as { details?: { gitlab_status?: unknown } }).details?.gitlab_status === 404
      ) {
        this.logger.info({ project: ctx.project, action: ctx.action }, "gitlab object already gone");
        return;
      }
      throw error;
    }
  }

  private async call<T>(ctx: Omit<CallContext, "host">, fn: () => Promise<T>): Promise<T> {
    const full: CallContext = { ...ctx, host: this.host };
    try {
      const { value } = await withRetry(fn, this.retry, isTransient, ({ attempt, delayMs, error }) => {
        const failure = classifyGitlabError(error);
        this.logger.warn(
          {
            project: ctx.project,
            action: ctx.action,
            attempt,
            delay_ms: delayMs,
            status: failure.status,
            reason: failure.detail,
          },
          "gitlab call failed, retrying",
        );
      });
      return value;
    } catch (error) {
      const exhausted = error as RetriesExhausted;
      throw toSlipwayError(classifyGitlabError(exhausted.last), full, exhausted.attempts);
    }
  }
}
