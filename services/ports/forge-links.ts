/** The project side of a link, as GitLab reports it when the tool is linked. */
export interface LinkedProject {
  readonly project_id: number;
  readonly project_path: string;
  /** HTTPS clone URL GitLab reports: the tool's source, fetched with the deploy token. */
  readonly http_url: string;
  readonly web_url: string;
  readonly default_branch: string | undefined;
  readonly hook_id: number;
}

/**
 * Where a tool's link to a GitLab project is kept. Credentials (the maintainer's access token and the
 * deploy token) are plaintext only in memory: adapters store them encrypted and never hand them to a
 * view that leaves the server.
 */
export interface GitlabLinkRecord extends LinkedProject {
  readonly tool: string;
  /** Base URL of the GitLab instance the maintainer gave (normalised, no trailing slash). */
  readonly gitlab_url: string;
  readonly deploy_token_id: number;
  readonly deploy_token_username: string;
  /** Credential: clone-only (`read_repository`). */
  readonly deploy_token: string;
  /** Credential: the maintainer's access token (scope `api`), used for commit statuses and unlinking. */
  readonly access_token: string;
  readonly linked_at: string;
}

/** The project side of a link as the API and the CLI show it. */
export function projectView(project: LinkedProject) {
  return {
    project_id: project.project_id,
    project_path: project.project_path,
    web_url: project.web_url,
    git_url: project.http_url,
    default_branch: project.default_branch ?? null,
    hook_id: project.hook_id,
  };
}

/** The public part of a link: what `tools show` and the API return. No credential in it. */
export function linkView(link: GitlabLinkRecord) {
  return {
    gitlab_url: link.gitlab_url,
    ...projectView(link),
    deploy_token_id: link.deploy_token_id,
    deploy_token_username: link.deploy_token_username,
    linked_at: link.linked_at,
  };
}

/** The commit-status steps of a build, in the only order they may be posted. */
export const STATUS_STEPS = ["pending", "running", "final"] as const;
export type StatusStep = (typeof STATUS_STEPS)[number];

export interface ForgeLinkStore {
  get(tool: string): Promise<GitlabLinkRecord | undefined>;
  put(link: GitlabLinkRecord): Promise<void>;
  delete(tool: string): Promise<void>;
  /**
   * Claims the right to post one commit-status step (`pending`, `running`, `final`) of a build for the
   * event `token` names. Steps only move forward: true once per build and step across all processes,
   * false for a step at or before one already claimed, so a state is posted once and a late `pending`
   * (a retried build, or an event another process handled late) never follows `running`. The same
   * token claiming the same step again gets true: an event delivered again after its handler died
   * mid-post is posted, not lost.
   */
  claimStatus(buildId: string, step: StatusStep, token: string): Promise<boolean>;
}
