import { CryptoBoxError } from "../../platform/crypto-box.js";
import { AuthError, ConflictError, NotFoundError } from "../../platform/errors.js";
import { hashSecret, newSecret, secretMatches } from "../../platform/secrets.js";
import type { SecretBox } from "../../ports/secret-box.js";
import type { ToolStore } from "../../ports/store.js";
import { validateNewToolName, type Tool } from "./tool.js";
import { openWebhookSecret, signatureMatches, webhookSecretFields } from "./webhook-secret.js";

/** What `tools create` shows once: the only time the secrets exist in plaintext. */
export interface CreatedTool {
  readonly name: string;
  readonly token: string;
  readonly git_url: string;
  readonly webhook_url: string;
  readonly webhook_secret: string;
  readonly redeploy_url: string;
  readonly web_url: string;
}

/** The secrets `tools rotate` replaces, by the names the CLI and API use. */
export const ROTATABLE_SECRETS = ["token", "webhook-secret", "redeploy-url"] as const;
export type RotatableSecret = (typeof ROTATABLE_SECRETS)[number];

/** What `tools rotate` shows once: the new secret in the field `tools create` showed it in. */
export type RotatedSecret = { readonly name: string } & (
  | { readonly token: string }
  | { readonly webhook_secret: string; readonly webhook_url: string }
  | { readonly redeploy_url: string }
);

export class ToolService {
  constructor(
    private readonly store: ToolStore,
    private readonly urls: { publicUrl: string; webUrl: (tool: string) => string },
    /**
     * Seals webhook secrets so signed (HMAC) deliveries can be checked. Absent (tests of other
     * concerns): secrets are kept as hashes only, and signed deliveries are refused.
     */
    private readonly box?: SecretBox,
  ) {}

  /** Tools whose secret is being sealed by this process, so a burst of deliveries seals it once. */
  private readonly sealing = new Set<string>();
  private readonly opens = new WeakSet<Tool>();

  async create(rawName: string): Promise<CreatedTool> {
    const name = validateNewToolName(rawName);
    const token = newSecret("slp");
    const webhookSecret = newSecret("slw");
    const redeployToken = newSecret("slr");
    const tool: Tool = {
      name,
      created_at: new Date().toISOString(),
      deploy: { branches: [], tags: [] },
      token_hash: hashSecret(token),
      ...webhookSecretFields(name, webhookSecret, this.box),
      redeploy_token_hash: hashSecret(redeployToken),
    };
    try {
      await this.store.createTool(tool);
    } catch (error) {
      if (error instanceof ConflictError) throw new ConflictError(`a tool named "${name}" already exists`);
      throw error;
    }
    const base = this.urls.publicUrl;
    return {
      name,
      token,
      git_url: `${base}/git/${name}.git`,
      webhook_url: `${base}/hooks/gitlab/${name}`,
      webhook_secret: webhookSecret,
      redeploy_url: redeployUrl(base, name, redeployToken),
      web_url: this.urls.webUrl(name),
    };
  }

  /**
   * Replaces one of a tool's secrets (a leaked token, webhook secret or redeploy URL): the old one stops
   * working at once, in this process and, through the tool watch, within a second in every other.
   */
  async rotate(name: string, secret: RotatableSecret): Promise<RotatedSecret> {
    await this.get(name);
    const base = this.urls.publicUrl;
    switch (secret) {
      case "token": {
        const token = newSecret("slp");
        await this.store.replaceSecretHash(name, "token", hashSecret(token));
        return { name, token };
      }
      case "webhook-secret": {
        const webhookSecret = newSecret("slw");
        const fields = webhookSecretFields(name, webhookSecret, this.box);
        await this.store.replaceSecretHash(name, "webhook", fields.webhook_secret_hash, fields);
        return { name, webhook_secret: webhookSecret, webhook_url: `${base}/hooks/gitlab/${name}` };
      }
      case "redeploy-url": {
        const redeployToken = newSecret("slr");
        await this.store.replaceSecretHash(name, "redeploy", hashSecret(redeployToken));
        return { name, redeploy_url: redeployUrl(base, name, redeployToken) };
      }
    }
  }

  async get(name: string): Promise<Tool> {
    const tool = await this.store.getTool(name);
    if (!tool) throw new NotFoundError(`no tool named "${name}"`);
    return tool;
  }

  /** Constant-time checks; an unknown tool and a wrong secret look the same to the caller. */
  async checkToken(name: string, token: string | undefined): Promise<boolean> {
    const tool = await this.store.getTool(name);
    return secretMatches(token, tool?.token_hash ?? DUMMY_HASH) && tool !== undefined;
  }

  async checkWebhookSecret(name: string, secret: string | undefined): Promise<Tool | undefined> {
    return this.matchWebhookSecret(await this.store.getTool(name), secret);
  }

  /**
   * The check of checkWebhookSecret on a tool record the caller already has (or undefined), for forges
   * that send the secret itself (GitLab's X-Gitlab-Token). A tool from before webhook secrets were
   * sealed gets its secret sealed here, once it has matched the hash: the lazy migration that lets the
   * tool later receive signed deliveries too.
   */
  async matchWebhookSecret(tool: Tool | undefined, secret: string | undefined): Promise<Tool | undefined> {
    const ok = secretMatches(secret, tool?.webhook_secret_hash ?? DUMMY_HASH);
    if (!ok || !tool || secret === undefined) return undefined;
    if (this.box && !this.sealing.has(tool.name) && !this.sealedSecretOpens(tool)) {
      this.sealing.add(tool.name);
      try {
        const { webhook_secret_sealed } = webhookSecretFields(tool.name, secret, this.box);
        return await this.store.updateTool(tool.name, { webhook_secret_sealed });
      } finally {
        this.sealing.delete(tool.name);
      }
    }
    return tool;
  }

  /**
   * For forges that sign each delivery (HMAC-SHA256 of the raw body, hex): the tool if `signature` was
   * made with its webhook secret, else undefined. An unknown tool costs the same work as a bad signature.
   * A tool whose secret is not sealed yet cannot be checked, and is told how to fix that.
   */
  matchWebhookSignature(
    tool: Tool | undefined,
    body: Buffer,
    signature: string | undefined,
  ): Tool | undefined {
    if (!tool) {
      signatureMatches(DUMMY_SECRET, body, signature);
      return undefined;
    }
    const secret = openWebhookSecret(tool, this.box);
    if (secret === undefined) {
      throw new AuthError(
        `send one delivery with the webhook secret as a token (GitLab's X-Gitlab-Token) or link the tool again to re-issue it: tool "${tool.name}"'s webhook secret predates encrypted storage, so signed deliveries cannot be checked yet`,
      );
    }
    return signatureMatches(secret, body, signature) ? tool : undefined;
  }

  /**
   * Whether the tool's sealed secret opens to the secret its hash names (a changed key: no). Records
   * found to open are remembered by identity: a webhook's tool cache hands out the same record for a
   * second, and decrypting it again for every delivery was a twentieth of a delivery's cost. A changed
   * record is a new object, checked afresh.
   */
  private sealedSecretOpens(tool: Tool): boolean {
    if (this.opens.has(tool)) return true;
    try {
      const opens = openWebhookSecret(tool, this.box) !== undefined;
      if (opens) this.opens.add(tool);
      return opens;
    } catch (error) {
      // Sealed under a key this home no longer has: sealing it again with the current key is the fix.
      if (error instanceof CryptoBoxError) return false;
      throw error;
    }
  }

  async checkRedeployToken(name: string, token: string | undefined): Promise<Tool | undefined> {
    const tool = await this.store.getTool(name);
    const ok = secretMatches(token, tool?.redeploy_token_hash ?? DUMMY_HASH);
    return ok && tool ? tool : undefined;
  }
}

function redeployUrl(base: string, tool: string, token: string): string {
  return `${base}/hooks/redeploy/${tool}?token=${encodeURIComponent(token)}`;
}

/** Compared against when the tool does not exist, so both paths do the same work. */
const DUMMY_HASH = hashSecret("no such tool");
const DUMMY_SECRET = "no such tool";

/** Public view of a tool: never the hashes. */
export function toolView(tool: Tool, urls: { publicUrl: string; webUrl: (tool: string) => string }) {
  return {
    name: tool.name,
    created_at: tool.created_at,
    git_url: `${urls.publicUrl}/git/${tool.name}.git`,
    webhook_url: `${urls.publicUrl}/hooks/gitlab/${tool.name}`,
    web_url: urls.webUrl(tool.name),
    deploy: tool.deploy,
    // A repository URL may carry credentials; they never leave the server.
    source: tool.source ? { ...tool.source, url: tool.source.url.replace(/\/\/[^@/]*@/, "//") } : null,
  };
}
