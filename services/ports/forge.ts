/**
 * Ports to the forge a tool's repository lives on (GitLab today). Two capabilities, kept apart because
 * they are used by different roles: linking (API role, on a maintainer's request) and reporting commit
 * statuses (builder and deployer roles, during a build).
 */

/** A GitLab project: its numeric id, or its full path (`group/sub/project`). */
export type ForgeProjectRef = string | number;

/** What Slipway keeps about a linked project; the numeric id survives renames and transfers. */
export interface ForgeProject {
  readonly id: number;
  readonly pathWithNamespace: string;
  /** HTTPS clone URL; the builder fetches from it with the deploy token. */
  readonly httpUrl: string;
  readonly webUrl: string;
  readonly defaultBranch: string | undefined;
}

/** A deploy token as created: the `token` is shown once by the forge and must be stored encrypted. */
export interface DeployToken {
  readonly id: number;
  readonly username: string;
  readonly token: string;
}

/**
 * Links a tool to a forge project and undoes it. Methods throw SlipwayErrors: `InputError` when the
 * credential or project is wrong (the message says what to fix), `TransientError` when the forge stayed
 * unreachable after bounded retries.
 */
export interface ForgeLink {
  /** Resolves a project reference; fails with a clear message if it is unknown or not visible. */
  describeProject(project: ForgeProjectRef): Promise<ForgeProject>;
  /**
   * Registers (or, when a hook with this URL exists, updates) a webhook that sends only push and tag
   * push events, with TLS verification on and `secret` as its token. Returns the hook id.
   */
  registerHook(project: ForgeProjectRef, url: string, secret: string): Promise<number>;
  /** Creates a deploy token that can only clone (`read_repository`). */
  createDeployToken(project: ForgeProjectRef, name: string): Promise<DeployToken>;
  /** Removes the hook and the deploy token; ones already gone count as removed. */
  unlink(
    project: ForgeProjectRef,
    hookId: number | undefined,
    deployTokenId: number | undefined,
  ): Promise<void>;
}

/** The commit states Slipway posts (GitLab's `skipped` is never used). */
export type CommitState = "pending" | "running" | "success" | "failed" | "canceled";

export interface CommitStatus {
  readonly projectId: ForgeProjectRef;
  readonly sha: string;
  /** Branch or tag name the build is for; without it GitLab guesses a branch containing the commit. */
  readonly ref: string;
  /** `slipway/<component>`: one status line per component (see `commitStatusName`). */
  readonly name: string;
  readonly state: CommitState;
  /** The build log; omitted when longer than the forge accepts (255 characters). */
  readonly targetUrl?: string | undefined;
  /** Shortened to the forge's 255-character limit. */
  readonly description?: string | undefined;
}

/** Why a status could not be posted, in a form a log line or a build event can carry. */
export type ReportFailureCode =
  | "unauthorized" // the token is wrong, expired or revoked
  | "forbidden" // the token lacks the `api` scope or the Developer role
  | "not_found" // project or commit unknown, or not visible to the token
  | "rejected" // the forge refused this state change or input (not retried)
  | "unavailable"; // network errors or 5xx/429 after every retry

/**
 * The outcome of one report. Reporting a status is a side channel of the build: a forge that is down or
 * misconfigured must never fail or delay the build beyond the bounded retries, so this is a value the
 * caller logs, not an exception.
 */
export type ReportResult =
  | { readonly ok: true; readonly outcome: "posted" | "unchanged"; readonly attempts: number }
  | {
      readonly ok: false;
      readonly code: ReportFailureCode;
      /** Says what to fix, without any credential in it. */
      readonly message: string;
      readonly attempts: number;
    };

/** Posts build and deploy states to the forge as commit statuses. `report` never rejects. */
export interface CommitStatusReporter {
  report(status: CommitStatus): Promise<ReportResult>;
}

/** The status name for a component: `slipway/<component>`. */
export function commitStatusName(component: string): string {
  return `slipway/${component}`;
}
