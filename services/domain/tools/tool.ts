import { InputError } from "../../platform/errors.js";

/**
 * A tool as stored. Secrets are kept as SHA-256 hashes (a bare secret finds its tool by hash); the
 * plaintext is shown once at creation. The webhook secret is also kept encrypted, because forges that
 * sign deliveries (HMAC) need it to check a signature.
 */
export interface Tool {
  readonly name: string;
  readonly created_at: string;
  /** Deploy policy: branch and tag globs. Empty branches means "the repository's default branch". */
  readonly deploy: DeployPolicy;
  readonly token_hash: string;
  readonly webhook_secret_hash: string;
  /**
   * The webhook secret sealed with the home's CryptoBox (context `webhook-secret:<tool>`). Absent on
   * tools created before it existed, until their secret is next presented or rotated (webhook-secret.ts).
   */
  readonly webhook_secret_sealed?: string | undefined;
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

/**
 * Names a new tool may not take: they would collide with Slipway's own hosts and routes once they are a
 * host (`<tool>.<domain>`), a namespace or a path (`/git/<tool>.git`), or are device names Windows
 * will not create a file or folder for (a clone of `con.git` fails there).
 */
const RESERVED = new Set([
  // Slipway's own routes and the hosts an operator is likely to give it or its services.
  ...["admin", "api", "auth", "docs", "git", "healthz", "hooks", "internal", "localhost", "login"],
  ...["metrics", "proxy", "redis", "registry", "slipway", "status", "ui", "webhooks", "www"],
  // Windows device names.
  ...["con", "prn", "aux", "nul"],
  ...Array.from({ length: 9 }, (_, i) => [`com${i + 1}`, `lpt${i + 1}`]).flat(),
]);

/** A name for a tool being created: valid, and not one of Slipway's own (existing tools keep theirs). */
export function validateNewToolName(name: string): string {
  validateToolName(name);
  if (RESERVED.has(name)) {
    throw new InputError(
      `the tool name "${name}" is reserved: it would collide with Slipway's own hosts and routes or with a device name on Windows; choose another, e.g. "${name}-tool"`,
      { details: { field: "name" } },
    );
  }
  return name;
}
