import type { Command } from "commander";
import type { ApiClient } from "./client.js";
import { jsonOption, print } from "./options.js";

interface LinkView {
  gitlab_url: string;
  project_id: number;
  project_path: string;
  web_url: string;
  git_url: string;
  default_branch: string | null;
  hook_id: number;
  deploy_token_id: number;
  deploy_token_username: string;
}

/** `tools link-gitlab` and `tools unlink-gitlab`: thin calls to `/api/v1/tools/:tool/gitlab`. */
export function registerGitlabCommands(tools: Command, client: () => Promise<ApiClient>): void {
  tools
    .command("link-gitlab <tool>")
    .description(
      "link a GitLab project: webhook for push and tag push, a clone-only deploy token, commit statuses",
    )
    .requiredOption("--url <url>", "GitLab base URL, e.g. https://gitlab.wikimedia.org")
    .requiredOption("--project <project>", "numeric project id or full path (group/project)")
    .requiredOption(
      "--token <token>",
      'access token with the "api" scope and the Maintainer role; "-" reads it from standard input',
    )
    .addOption(jsonOption())
    .action(async (tool: string, o: { url: string; project: string; token: string; json?: boolean }) => {
      const token = o.token === "-" ? (await readStdin()).trim() : o.token;
      const project = /^\d+$/.test(o.project) ? Number(o.project) : o.project;
      const link = await (
        await client()
      ).request<LinkView>("POST", `/api/v1/tools/${encodeURIComponent(tool)}/gitlab`, {
        url: o.url,
        project,
        token,
      });
      print(!!o.json, link, () =>
        [
          `Linked ${tool} to ${link.project_path} (project ${link.project_id}) on ${link.gitlab_url}.`,
          `  webhook:      hook ${link.hook_id} (push and tag push events); the tool has a new webhook secret`,
          `                that only GitLab knows — the previous one no longer works`,
          `  deploy token: ${link.deploy_token_username} (id ${link.deploy_token_id}, read_repository)`,
          `  statuses:     builds show on commits as slipway/<component>`,
        ].join("\n"),
      );
    });

  tools
    .command("unlink-gitlab <tool>")
    .description("remove the GitLab webhook and deploy token, and forget the link")
    .addOption(jsonOption())
    .action(async (tool: string, o: { json?: boolean }) => {
      const r = await (
        await client()
      ).request<{ unlinked: boolean; gitlab: LinkView | null }>(
        "DELETE",
        `/api/v1/tools/${encodeURIComponent(tool)}/gitlab`,
      );
      print(!!o.json, r, () =>
        r.gitlab
          ? `Unlinked ${tool} from ${r.gitlab.project_path}: hook ${r.gitlab.hook_id} removed, deploy token ${r.gitlab.deploy_token_id} revoked.`
          : `${tool} was not linked to GitLab.`,
      );
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
