import { errorMessage, SlipwayError } from "../../platform/errors.js";
import type { DeployToken, ForgeLink, ForgeProjectRef } from "../../ports/forge.js";
import { projectView, type LinkedProject } from "../../ports/forge-links.js";

/** What `tools link-gitlab` needs: the project, and where GitLab should send push events for the tool. */
export interface LinkGitlabInput {
  readonly tool: string;
  /** Numeric id or `group/project` path, as the maintainer typed it. */
  readonly project: ForgeProjectRef;
  /** The tool's webhook URL (`<public url>/hooks/gitlab/<tool>`). */
  readonly webhookUrl: string;
  /** The tool's webhook secret in plaintext; GitLab sends it back as `X-Gitlab-Token`. */
  readonly webhookSecret: string;
}

/**
 * A linked project as the tool record should keep it. `deploy_token.token` is a credential: store it
 * encrypted (CryptoBox) and never return it from the API.
 */
export interface GitlabLink extends LinkedProject {
  readonly deploy_token: DeployToken;
}

/** The ids `unlinkGitlab` needs. */
export interface GitlabLinkIds {
  readonly project_id: number;
  readonly hook_id?: number | undefined;
  readonly deploy_token_id?: number | undefined;
}

/**
 * Links a tool to a GitLab project: a webhook for push and tag push events carrying the tool's secret,
 * and a clone-only deploy token. Linking again updates the webhook (same URL) and creates a new deploy
 * token; the caller revokes the old one with `unlinkGitlab(forge, {project_id, deploy_token_id})`.
 * If the deploy token cannot be created, the webhook just registered is removed again, so a failed link
 * leaves no hook sending pushes for a tool that cannot fetch them.
 */
export async function linkGitlab(forge: ForgeLink, input: LinkGitlabInput): Promise<GitlabLink> {
  const project = await forge.describeProject(input.project);
  const hookId = await forge.registerHook(project.id, input.webhookUrl, input.webhookSecret);
  let deployToken: DeployToken;
  try {
    deployToken = await forge.createDeployToken(project.id, deployTokenName(input.tool));
  } catch (error) {
    try {
      await forge.unlink(project.id, hookId, undefined);
    } catch (cleanup) {
      // The link error is the one to report; the leftover hook is named so the maintainer can delete it.
      throw new SlipwayError(
        error instanceof SlipwayError ? error.code : "internal",
        `${errorMessage(error)} Also, the webhook ${hookId} just registered on ${project.pathWithNamespace} could not be removed (${errorMessage(cleanup)}): delete it in Settings > Webhooks.`,
        { cause: error, details: { leftover_hook_id: hookId } },
      );
    }
    throw error;
  }
  return {
    project_id: project.id,
    project_path: project.pathWithNamespace,
    http_url: project.httpUrl,
    web_url: project.webUrl,
    default_branch: project.defaultBranch,
    hook_id: hookId,
    deploy_token: deployToken,
  };
}

/** Removes the webhook and revokes the deploy token; safe to repeat. */
export async function unlinkGitlab(forge: ForgeLink, link: GitlabLinkIds): Promise<void> {
  await forge.unlink(link.project_id, link.hook_id, link.deploy_token_id);
}

/** What `tools link-gitlab` prints (`--json` prints it as is): no credential in it. */
export function linkSummary(tool: string, link: GitlabLink): Record<string, unknown> {
  return {
    tool,
    ...projectView(link),
    deploy_token_id: link.deploy_token.id,
    deploy_token_username: link.deploy_token.username,
  };
}

/** GitLab shows this name in Settings > Repository > Deploy tokens, so maintainers can tell whose it is. */
export function deployTokenName(tool: string): string {
  return `slipway-${tool}`;
}
