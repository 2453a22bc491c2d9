import { SlipwayError } from "../../platform/errors.js";
import { deriveSecret, hashSecret, secretMatches } from "../../platform/secrets.js";

/** The username the builder fetches from Slipway's own git remote with; never a tool's token. */
export const BUILDER_USER = "slipway-builder";

type Auth = { username: string; password: string };

export interface SourceAccessDeps {
  readonly publicUrl: string;
  /** SLIPWAY_HOME/builder-secret: the master the per-tool read credentials are derived from. */
  readonly builderSecret: string;
  /** The deploy token of a tool's linked GitLab project, for that project's URL only. */
  readonly linkedAuth: (tool: string | undefined, url: string) => Promise<Auth | undefined>;
}

/**
 * Who may read which repository when the builder (or a ref lookup) fetches a tool's source. The
 * builder's credential for Slipway's own git remote is derived per tool, so it opens only the building
 * tool's repository and only for fetching; a source URL on Slipway's own host that is not that
 * repository is refused outright, so no tool can name another tool's repository as its source.
 */
export function sourceAccess(deps: SourceAccessDeps) {
  const ownHost = new URL(deps.publicUrl).host.toLowerCase();
  const ownRepository = (tool: string) => `${deps.publicUrl}/git/${tool}.git`;
  const builderPassword = (tool: string) => deriveSecret(deps.builderSecret, `git-fetch:${tool}`);

  return {
    ownHost,

    /** For the git remote: the builder's credential fetches the one tool it was derived for. */
    isBuilderFetch(tool: string, password: string, service: string): boolean {
      return service === "git-upload-pack" && secretMatches(password, hashSecret(builderPassword(tool)));
    },

    /**
     * How to fetch `url` for `tool`: from its own repository on this Slipway (`own`, with the builder's
     * credential for it), or from outside (the credentials given, else those in the URL's user-info, else
     * the tool's GitLab deploy token). Throws when the URL is on this Slipway but is not the tool's own repository.
     */
    async plan(url: string, given: Auth | undefined, tool: string | undefined) {
      if (tool !== undefined && url === ownRepository(tool)) {
        return { own: true, auth: { username: BUILDER_USER, password: builderPassword(tool) } } as const;
      }
      if (hostOf(url) === ownHost) {
        throw new SlipwayError(
          "source_rejected",
          `${redact(url)} is on this Slipway but is not ${tool === undefined ? "the tool" : `tool ${tool}`}'s own repository (${tool === undefined ? "<public url>/git/<tool>.git" : ownRepository(tool)}): a tool builds only from its own repository or from one outside Slipway`,
          { details: { url: redact(url), tool } },
        );
      }
      return {
        own: false,
        auth: given ?? userInfo(url) ?? (await deps.linkedAuth(tool, url)),
      } as const;
    },
  };
}

export type SourceAccess = ReturnType<typeof sourceAccess>;

function hostOf(url: string): string | undefined {
  return URL.canParse(url) ? new URL(url).host.toLowerCase() : undefined;
}

/**
 * `https://user:token@host/…`: a source URL may carry its credential (a private repository's). A backend
 * that hands the URL to another program (the fetch Task's git) strips it from the URL, so it must get it
 * here as the fetch's credential.
 */
function userInfo(url: string): Auth | undefined {
  if (!URL.canParse(url)) return undefined;
  const { username, password } = new URL(url);
  if (!username && !password) return undefined;
  return { username: decodeURIComponent(username), password: decodeURIComponent(password) };
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}
