import { run } from "../../platform/process.js";

/** A tool as `GET /api/v1/tools` lists it: what the token can see. */
export interface VisibleTool {
  readonly name: string;
  readonly git_url: string;
}

/**
 * The tools the current directory's git remotes point at: remotes whose URL, credentials aside, is a
 * visible tool's `git_url`, or this server's `/git/<tool>.git` as the CLI reaches it (the public URL
 * the server prints may name another host than SLIPWAY_URL does).
 */
export async function toolsOfGitRemotes(tools: readonly VisibleTool[], serverUrl: string): Promise<string[]> {
  const remotes = await gitRemoteUrls();
  const server = originOf(serverUrl);
  const found = new Set<string>();
  for (const tool of tools) {
    const own = withoutCredentials(tool.git_url);
    const viaCli = server === undefined ? undefined : `${server}/git/${tool.name}.git`;
    if (remotes.some((r) => r === own || r === viaCli)) found.add(tool.name);
  }
  return [...found];
}

/** Remote URLs of the git repository around the working directory; none outside a repository or without git. */
async function gitRemoteUrls(): Promise<string[]> {
  try {
    const r = await run("git", ["config", "--get-regexp", "^remote\\..*\\.url$"], { allowFailure: true });
    if (r.code !== 0) return [];
    return r.stdout
      .split("\n")
      .map((line) => line.slice(line.indexOf(" ") + 1).trim())
      .filter(Boolean)
      .map(withoutCredentials)
      .filter((u): u is string => u !== undefined);
  } catch {
    // No git on PATH: there are no remotes to go by.
    return [];
  }
}

/** `scheme://host[:port]/path` without user, password, query or a trailing slash; undefined if no URL. */
function withoutCredentials(url: string): string | undefined {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname.replace(/\/$/, "")}`;
  } catch {
    return undefined;
  }
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}
