import git from "./isomorphic-git.js";
import { SlipwayError } from "../../platform/errors.js";
import type { RefResolver } from "../../ports/refs.js";
import { abortableHttpClient } from "./http-client.js";

/**
 * `git ls-remote` through isomorphic-git: one HTTP request, nothing cloned. On the fetcher's HTTP client,
 * so the same address rules hold (public addresses only, outside `allowHosts`), redirects included.
 */
export class RemoteRefs implements RefResolver {
  constructor(private readonly allowHosts: readonly string[]) {}

  async resolve(url: string, ref: string, auth?: { username: string; password: string }) {
    let refs: Awaited<ReturnType<typeof git.listServerRefs>>;
    try {
      refs = await git.listServerRefs({
        http: abortableHttpClient(undefined, this.allowHosts),
        url,
        peelTags: true,
        symrefs: true,
        ...(auth ? { onAuth: () => auth } : {}),
      });
    } catch (cause) {
      if (cause instanceof SlipwayError) throw cause;
      throw new SlipwayError("source_fetch_failed", `cannot list the refs of ${redact(url)}`, { cause });
    }
    const wanted =
      ref === "HEAD" ? ["HEAD"] : ref.startsWith("refs/") ? [ref] : [`refs/heads/${ref}`, `refs/tags/${ref}`];
    for (const name of wanted) {
      const found = refs.find((r) => r.ref === name);
      if (!found) continue;
      // Annotated tags: the peeled value is the commit.
      const commit = found.peeled ?? found.oid;
      const resolvedRef = name === "HEAD" && found.target ? found.target : name;
      return { ref: resolvedRef, commit };
    }
    return undefined;
  }
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}
