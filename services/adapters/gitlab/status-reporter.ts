import { errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { CommitStatus, CommitStatusReporter, ReportResult } from "../../ports/forge.js";
import { gitlabApi, type GitlabApi, type GitlabConnection } from "./client.js";
import { classifyGitlabError, describeFailure, isSameState, isTransient, reportCode } from "./errors.js";
import { RetriesExhausted, retryPolicy, withRetry, type RetryPolicy } from "./retry.js";

/** GitLab rejects `description`, `target_url` and `ref` longer than this (characters). */
export const GITLAB_FIELD_MAX = 255;

export interface GitlabStatusReporterOptions extends GitlabConnection {
  readonly logger: Logger;
  readonly retry?: Partial<RetryPolicy> | undefined;
}

/**
 * Posts commit statuses with `POST /projects/:id/statuses/:sha`. Re-posting the state a status already
 * has makes GitLab answer 400 "Cannot transition status via :run from :running"; that is the state we
 * wanted, so it counts as success. Network errors, 5xx and 429 are retried with bounded backoff; nothing
 * is ever thrown into the build.
 */
export class GitlabStatusReporter implements CommitStatusReporter {
  private constructor(
    private readonly api: GitlabApi,
    private readonly host: string,
    private readonly retry: RetryPolicy,
    private readonly logger: Logger,
  ) {}

  static create(options: GitlabStatusReporterOptions): GitlabStatusReporter {
    const { api, host } = gitlabApi(options);
    return new GitlabStatusReporter(
      api,
      host,
      retryPolicy(options.retry),
      options.logger.child({ gitlab: host }),
    );
  }

  async report(status: CommitStatus): Promise<ReportResult> {
    const fields = { project: status.projectId, sha: status.sha, name: status.name, state: status.state };
    const ctx = {
      host: this.host,
      project: status.projectId,
      action: "set a commit status",
      role: "Developer",
    } as const;
    try {
      const { attempts } = await withRetry(
        () =>
          this.api.Commits.editStatus(status.projectId, status.sha, status.state, {
            ref: status.ref,
            name: status.name,
            ...(status.targetUrl !== undefined && status.targetUrl.length <= GITLAB_FIELD_MAX
              ? { targetUrl: status.targetUrl }
              : {}),
            ...(status.description !== undefined
              ? { description: truncate(status.description, GITLAB_FIELD_MAX) }
              : {}),
          }),
        this.retry,
        isTransient,
        ({ attempt, delayMs, error }) => {
          const failure = classifyGitlabError(error);
          this.logger.warn(
            { ...fields, attempt, delay_ms: delayMs, status: failure.status, reason: failure.detail },
            "gitlab commit status failed, retrying",
          );
        },
      );
      this.logger.debug(fields, "gitlab commit status posted");
      return { ok: true, outcome: "posted", attempts };
    } catch (error) {
      if (!(error instanceof RetriesExhausted)) {
        // Not reachable through withRetry; kept so that report() cannot reject whatever happens.
        return { ok: false, code: "rejected", message: errorMessage(error), attempts: 1 };
      }
      const failure = classifyGitlabError(error.last);
      if (isSameState(failure, status.state)) {
        this.logger.debug(fields, "gitlab commit status already in this state");
        return { ok: true, outcome: "unchanged", attempts: error.attempts };
      }
      return {
        ok: false,
        code: reportCode(failure),
        message: describeFailure(failure, ctx, error.attempts),
        attempts: error.attempts,
      };
    }
  }
}

/** Cuts at a code point boundary and marks the cut, keeping at most `max` characters. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}
