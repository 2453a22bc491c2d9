import { ConflictError, NotFoundError } from "../../platform/errors.js";
import { hashSecret, newSecret, secretMatches } from "../../platform/secrets.js";
import type { ToolStore } from "../../ports/store.js";
import { validateNewToolName, type Tool } from "./tool.js";

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

export class ToolService {
  constructor(
    private readonly store: ToolStore,
    private readonly urls: { publicUrl: string; webUrl: (tool: string) => string },
  ) {}

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
      webhook_secret_hash: hashSecret(webhookSecret),
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
      redeploy_url: `${base}/hooks/redeploy/${name}?token=${encodeURIComponent(redeployToken)}`,
      web_url: this.urls.webUrl(name),
    };
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

  /** The check of checkWebhookSecret on a tool record the caller already has (or undefined). */
  matchWebhookSecret(tool: Tool | undefined, secret: string | undefined): Tool | undefined {
    const ok = secretMatches(secret, tool?.webhook_secret_hash ?? DUMMY_HASH);
    return ok && tool ? tool : undefined;
  }

  async checkRedeployToken(name: string, token: string | undefined): Promise<Tool | undefined> {
    const tool = await this.store.getTool(name);
    const ok = secretMatches(token, tool?.redeploy_token_hash ?? DUMMY_HASH);
    return ok && tool ? tool : undefined;
  }
}

/** Compared against when the tool does not exist, so both paths do the same work. */
const DUMMY_HASH = hashSecret("no such tool");

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
