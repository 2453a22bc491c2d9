export interface FetchRequest {
  /** HTTP(S) git URL. */
  readonly url: string;
  /** Branch or tag to fetch (`refs/heads/x`, `refs/tags/v1`, or a short name). */
  readonly ref: string;
  /** The exact commit to check out; it must be reachable from `ref`. */
  readonly commit: string;
  readonly auth?: { readonly username: string; readonly password: string } | undefined;
  /** The tool the fetch is for: picks its linked GitLab deploy token, and only for its linked project. */
  readonly tool?: string | undefined;
}

export interface FetchedSource {
  readonly commit: string;
  /** Committer time in seconds since the epoch: the build's SOURCE_DATE_EPOCH. */
  readonly commitTime: number;
}

/** Fetches exactly one commit of a repository into an empty directory, without `.git`. */
export interface SourceFetcher {
  fetch(request: FetchRequest, dest: string, signal?: AbortSignal): Promise<FetchedSource>;
}
