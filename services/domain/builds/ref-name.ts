/**
 * Git's rules for ref names (`git check-ref-format`), so a ref from a webhook payload cannot smuggle
 * path traversal, control characters, option-like or revision syntax into a build. Names outside
 * ASCII are allowed, as git allows them.
 */
export function isValidRefName(ref: string): boolean {
  if (ref.length === 0 || ref.length > 1024) return false;
  if (ref === "@" || ref.startsWith("-") || ref.startsWith("/") || ref.endsWith("/") || ref.endsWith(".")) {
    return false;
  }
  if (ref.includes("..") || ref.includes("//") || ref.includes("@{")) return false;
  // Controls (C0, DEL, C1), space, and the characters git reserves for revision syntax and globs.
  for (const ch of ref) {
    const c = ch.codePointAt(0)!;
    if (c <= 0x20 || (c >= 0x7f && c <= 0x9f) || "~^:?*[\\".includes(ch)) return false;
  }
  return ref.split("/").every((part) => part.length > 0 && !part.startsWith(".") && !part.endsWith(".lock"));
}

/** A branch name as GitLab reports a default branch: a ref name without `refs/heads/`. */
export function isValidBranchName(name: string): boolean {
  return isValidRefName(`refs/heads/${name}`);
}
