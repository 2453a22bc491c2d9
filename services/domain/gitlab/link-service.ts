import { InputError, NotFoundError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import { newSecret } from "../../platform/secrets.js";
import type { ForgeLink, ForgeProjectRef } from "../../ports/forge.js";
import { linkView, type ForgeLinkStore, type GitlabLinkRecord } from "../../ports/forge-links.js";
import type { SecretBox } from "../../ports/secret-box.js";
import type { ToolStore } from "../../ports/store.js";
import { webhookSecretFields } from "../tools/webhook-secret.js";
import { linkGitlab, unlinkGitlab } from "./linking.js";

export interface GitlabLinkRequest {
  readonly tool: string;
  readonly url: string;
  readonly project: ForgeProjectRef;
  /** The maintainer's access token (scope `api`); kept encrypted, never returned. */
  readonly token: string;
}

export interface GitlabLinkServiceDeps {
  readonly store: ToolStore;
  readonly links: ForgeLinkStore;
  /** A ForgeLink on one instance with one token; throws InputError for a bad URL or empty token. */
  readonly forgeFor: (connection: { host: string; token: string }) => { forge: ForgeLink; host: string };
  readonly publicUrl: string;
  readonly logger: Logger;
  /** Seals the new webhook secret (see Tool.webhook_secret_sealed); absent: kept as a hash only. */
  readonly box?: SecretBox | undefined;
}

/**
 * `tools link-gitlab` and `tools unlink-gitlab`. Linking gives the tool a new webhook secret that only
 * GitLab knows (the old one stops working: whoever had it can no longer trigger builds), registers the
 * project hook with it, creates a clone-only deploy token and keeps the link with both credentials
 * encrypted. GitLab is called before anything changes here, so a refused link leaves the tool as it was.
 */
export class GitlabLinkService {
  constructor(private readonly deps: GitlabLinkServiceDeps) {}

  async link(request: GitlabLinkRequest) {
    const { store, links } = this.deps;
    const tool = await store.getTool(request.tool);
    if (!tool) throw new NotFoundError(`no tool named "${request.tool}"`);
    const project = parseProject(request.project);
    const { forge, host } = this.deps.forgeFor({ host: request.url, token: request.token });
    const previous = await links.get(tool.name);

    const webhookSecret = newSecret("slw");
    const linked = await linkGitlab(forge, {
      tool: tool.name,
      project,
      webhookUrl: `${this.deps.publicUrl}/hooks/gitlab/${tool.name}`,
      webhookSecret,
    });
    const record: GitlabLinkRecord = {
      tool: tool.name,
      gitlab_url: host,
      project_id: linked.project_id,
      project_path: linked.project_path,
      http_url: linked.http_url,
      web_url: linked.web_url,
      default_branch: linked.default_branch,
      hook_id: linked.hook_id,
      deploy_token_id: linked.deploy_token.id,
      deploy_token_username: linked.deploy_token.username,
      deploy_token: linked.deploy_token.token,
      access_token: request.token,
      linked_at: new Date().toISOString(),
    };
    await links.put(record);
    const secretFields = webhookSecretFields(tool.name, webhookSecret, this.deps.box);
    await store.replaceSecretHash(tool.name, "webhook", secretFields.webhook_secret_hash, secretFields);
    const log = this.deps.logger.child({ tool: tool.name, project_id: record.project_id });
    log.info({ hook_id: record.hook_id, deploy_token_id: record.deploy_token_id }, "gitlab project linked");

    if (previous !== undefined) await this.retirePrevious(previous, record, log);
    return linkView(record);
  }

  /** Returns what was linked, or undefined when nothing was. Safe to repeat. */
  async unlink(toolName: string) {
    const { store, links } = this.deps;
    const tool = await store.getTool(toolName);
    if (!tool) throw new NotFoundError(`no tool named "${toolName}"`);
    const link = await links.get(tool.name);
    if (link === undefined) return undefined;
    const { forge } = this.deps.forgeFor({ host: link.gitlab_url, token: link.access_token });
    // A hook or token already deleted in GitLab counts as removed (404 there is fine).
    await unlinkGitlab(forge, {
      project_id: link.project_id,
      hook_id: link.hook_id,
      deploy_token_id: link.deploy_token_id,
    });
    await links.delete(tool.name);
    this.deps.logger.info({ tool: tool.name, project_id: link.project_id }, "gitlab project unlinked");
    return linkView(link);
  }

  async status(toolName: string) {
    const link = await this.deps.links.get(toolName);
    return link === undefined ? null : linkView(link);
  }

  /**
   * Relinking: the old deploy token is revoked, and the old hook removed when it was on another project
   * (on the same project the hook was updated in place). Best effort: the new link already works.
   */
  private async retirePrevious(previous: GitlabLinkRecord, current: GitlabLinkRecord, log: Logger) {
    const sameProject =
      previous.gitlab_url === current.gitlab_url && previous.project_id === current.project_id;
    if (sameProject && previous.deploy_token_id === current.deploy_token_id) return;
    try {
      const { forge } = this.deps.forgeFor({ host: previous.gitlab_url, token: previous.access_token });
      await unlinkGitlab(forge, {
        project_id: previous.project_id,
        hook_id: sameProject ? undefined : previous.hook_id,
        deploy_token_id: previous.deploy_token_id,
      });
    } catch (error) {
      log.warn(
        {
          previous_project_id: previous.project_id,
          previous_hook_id: previous.hook_id,
          previous_deploy_token_id: previous.deploy_token_id,
          err: error,
        },
        "the previous gitlab link could not be fully removed; delete its hook and deploy token by hand",
      );
    }
  }
}

/** A numeric id is sent as a number (GitLab treats "42" and 42 alike, but ids survive renames). */
function parseProject(project: ForgeProjectRef): ForgeProjectRef {
  if (typeof project === "number") return project;
  const trimmed = project.trim().replace(/^\/+|\/+$/g, "");
  if (trimmed === "") {
    throw new InputError("give the GitLab project as its numeric id or its path (group/project)", {
      details: { field: "project" },
    });
  }
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}
