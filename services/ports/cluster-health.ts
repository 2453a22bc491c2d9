/** Whether the cluster the cluster profile deploys to answers, as health and `webservice status` show it. */
export interface ClusterHealthView {
  /** `unknown` until the first answer or failure; `unavailable` while the API server cannot be reached. */
  readonly status: "unknown" | "available" | "unavailable";
  /** The API server's address (from the kubeconfig). */
  readonly server: string | null;
  /** Why it is unavailable (`connect ECONNREFUSED …`, `HTTP 401`); null while available. */
  readonly reason: string | null;
  /** When the status last changed. */
  readonly since: string;
  /** Problems that do not stop deploys but break what users reach (an Ingress class the cluster lacks). */
  readonly warnings: readonly string[];
}

/** The cluster's current health, kept up to date in the background. */
export interface ClusterHealthSource {
  view(): ClusterHealthView;
}
