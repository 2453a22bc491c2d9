import { InputError } from "../../platform/errors.js";

/** A tool as stored. Secrets are kept only as SHA-256 hashes; the plaintext is shown once at creation. */
export interface Tool {
  readonly name: string;
  readonly created_at: string;
  /** Deploy policy: branch and tag globs. Empty branches means "the repository's default branch". */
  readonly deploy: DeployPolicy;
  readonly token_hash: string;
  readonly webhook_secret_hash: string;
  readonly redeploy_token_hash: string;
  /** Last source the tool was built from, so a redeploy knows what to fetch. */
  readonly source?: ToolSource | undefined;
}

export interface DeployPolicy {
  readonly branches: readonly string[];
  readonly tags: readonly string[];
  /** True when `deploy.branches: []` in the config: no branch deploys (only tags, if any). */
  readonly no_branches?: boolean | undefined;
  /** Where the policy came from: the config file (and commit) the last build read it from. */
  readonly from?: string | undefined;
}

export interface ToolSource {
  readonly url: string;
  readonly ref: string;
  readonly default_branch: string;
}

const MAX_TOOL_NAME = 52;
const LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/**
 * Tool names become DNS labels (`<tool>.localhost`), namespaces (`tool-<tool>`) and registry paths, so
 * they are RFC 1123 labels; 52 characters leaves room for the `tool-` prefix and suffixes Kubernetes adds.
 */
export function validateToolName(name: string): string {
  if (name.length === 0 || name.length > MAX_TOOL_NAME || !LABEL.test(name)) {
    throw new InputError(
      `invalid tool name "${name.slice(0, 80)}": use 1-${MAX_TOOL_NAME} lowercase letters, digits and '-', starting and ending with a letter or digit`,
      { details: { field: "name" } },
    );
  }
  return name;
}
