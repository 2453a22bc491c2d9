import type { DeployPolicy } from "../tools/tool.js";

export type RefKind = "branch" | "tag";

export interface PolicyDecision {
  readonly deploy: boolean;
  /** Which rule matched, or why nothing did: shown in the webhook answer. */
  readonly reason: string;
}

export function parseRef(ref: string): { kind: RefKind; name: string } | undefined {
  if (ref.startsWith("refs/heads/")) return { kind: "branch", name: ref.slice("refs/heads/".length) };
  if (ref.startsWith("refs/tags/")) return { kind: "tag", name: ref.slice("refs/tags/".length) };
  return undefined;
}

/**
 * Decides whether a pushed ref deploys. With no branch rules the repository's default branch deploys;
 * tags deploy only when a tag rule matches.
 */
export function decide(policy: DeployPolicy, ref: string, defaultBranch: string | undefined): PolicyDecision {
  const parsed = parseRef(ref);
  if (!parsed) return { deploy: false, reason: `ref ${ref} is neither a branch nor a tag` };
  if (parsed.kind === "branch") {
    if (policy.no_branches) {
      return {
        deploy: false,
        reason: `branch ${parsed.name} ignored: deploy.branches is []${policy.from ? ` in ${policy.from}` : ""}, so no branch deploys`,
      };
    }
    if (policy.branches.length === 0) {
      return parsed.name === defaultBranch
        ? { deploy: true, reason: `branch ${parsed.name} is the default branch` }
        : {
            deploy: false,
            reason: `branch ${parsed.name} is not the default branch (${defaultBranch ?? "unknown"}) and no deploy.branches rule is set`,
          };
    }
    const rule = policy.branches.find((g) => globMatches(g, parsed.name));
    return rule
      ? { deploy: true, reason: `branch ${parsed.name} matches deploy.branches "${rule}"` }
      : {
          deploy: false,
          reason: `branch ${parsed.name} matches no deploy.branches rule (${policy.branches.join(", ")})`,
        };
  }
  const rule = policy.tags.find((g) => globMatches(g, parsed.name));
  if (rule) return { deploy: true, reason: `tag ${parsed.name} matches deploy.tags "${rule}"` };
  return {
    deploy: false,
    reason:
      policy.tags.length === 0
        ? `tag ${parsed.name} ignored: no deploy.tags rule is set`
        : `tag ${parsed.name} matches no deploy.tags rule (${policy.tags.join(", ")})`,
  };
}

/** Globs as in .gitignore-style ref filters: `*` within one path segment, `**` across, `?` one character. */
export function globMatches(glob: string, name: string): boolean {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") {
      if (glob[i + 1] === "*") {
        re += ".*";
        i++;
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`).test(name);
}
