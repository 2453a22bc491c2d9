/** Resolves a branch or tag of a remote repository to the commit it points at (like `git ls-remote`). */
export interface RefResolver {
  resolve(
    url: string,
    ref: string,
    auth?: { username: string; password: string },
    /** The tool asking: its linked GitLab project is read with its deploy token. */
    tool?: string,
  ): Promise<{ ref: string; commit: string } | undefined>;
}
