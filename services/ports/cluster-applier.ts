import type { KubernetesObject, LimitPolicy } from "../domain/kubernetes/index.js";

/**
 * What the Kubernetes rollout needs of a cluster (KubernetesApplier satisfies it). Kept this small so
 * the domain does not know client-node.
 */
export interface ClusterApplier {
  /** Server-side applies a tool's objects; with `prune`, deletes the tool's objects not among them. */
  apply(tool: string, objects: readonly KubernetesObject[], options: { prune: boolean }): Promise<unknown>;
  /** Resolves once the Deployment rolled out; rejects with a report of its new pods when it is stuck. */
  waitForRollout(
    namespace: string,
    name: string,
    options: { timeoutS: number; signal?: AbortSignal | undefined; pollMs?: number | undefined },
  ): Promise<unknown>;
  /**
   * The LimitRanges and ResourceQuotas live in the tool's namespace (an operator's beside Slipway's); none
   * before the namespace exists. Without it the release is checked against the ones Slipway renders only.
   */
  namespacePolicy?(tool: string): Promise<LimitPolicy>;
}
