import type { GitlabLinkRecord } from "../../ports/forge-links.js";

/**
 * Whether a repository URL is a link's project: GitLab's clone URL for it, or `<instance>/<path>.git`,
 * with credentials, a trailing `.git` or slash and letter case ignored (GitLab paths are
 * case-insensitive). The deploy token is only ever sent to such a URL.
 */
export function isLinkedRepository(link: GitlabLinkRecord, url: string): boolean {
  const given = normalise(url);
  if (given === undefined) return false;
  return [link.http_url, `${link.gitlab_url}/${link.project_path}`].some((u) => normalise(u) === given);
}

function normalise(raw: string): string | undefined {
  try {
    const u = new URL(raw);
    return `${u.protocol}//${u.host}${u.pathname}`
      .replace(/\/+$/, "")
      .replace(/\.git$/, "")
      .toLowerCase();
  } catch {
    return undefined;
  }
}
