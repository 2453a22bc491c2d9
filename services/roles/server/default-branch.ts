import { readFile } from "node:fs/promises";
import path from "node:path";
import { run } from "../../platform/process.js";

/**
 * The default branch of a tool's bare repository on Slipway's git remote. A new bare repository's HEAD
 * names a branch nobody pushed (git's init default); the first branch pushed becomes the default, as on
 * GitHub and GitLab.
 */
export async function defaultBranchFor(
  repoDir: string,
  pushedRefs: readonly string[],
): Promise<string | undefined> {
  const head = (await readFile(path.join(repoDir, "HEAD"), "utf8").catch(() => "")).trim();
  const current = /^ref: refs\/heads\/(.+)$/.exec(head)?.[1];
  if (current) {
    const exists = await run(
      "git",
      ["--git-dir", repoDir, "rev-parse", "--verify", "--quiet", `refs/heads/${current}`],
      {
        allowFailure: true,
      },
    );
    if (exists.code === 0) return current;
  }
  const pushed = pushedRefs.find((r) => r.startsWith("refs/heads/"));
  if (!pushed) return current;
  await run("git", ["--git-dir", repoDir, "symbolic-ref", "HEAD", pushed]);
  return pushed.slice("refs/heads/".length);
}
