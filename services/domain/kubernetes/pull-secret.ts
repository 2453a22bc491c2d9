// Types only: erased at compile time, so the domain does not load the Kubernetes client.
import type { V1ObjectMeta, V1Secret } from "@kubernetes/client-node";
import type { PullCredentials } from "../../ports/registry-access.js";
import { validateToolName } from "../tools/tool.js";
import { namespaceName, toolLabels } from "./names.js";

/** `Rendered<V1Secret>`, spelled out: render.ts imports pod.ts, which imports this file. */
type RenderedSecret = Omit<V1Secret, "apiVersion" | "kind" | "metadata"> & {
  apiVersion: string;
  kind: string;
  metadata: V1ObjectMeta & { name: string };
};

/** The Secret every pod template names in `imagePullSecrets`; one per tool namespace. */
export const PULL_SECRET_NAME = "registry-pull";

/**
 * The tool's registry credential as a `kubernetes.io/dockerconfigjson` Secret, the form kubelet reads
 * for `imagePullSecrets`. It carries the tool labels (managed-by slipway), so the deployer must pass
 * it with every apply-with-prune, or prune deletes it.
 */
export function renderPullSecret(tool: string, credentials: PullCredentials): RenderedSecret {
  validateToolName(tool);
  const { registry, username, password } = credentials;
  const auth = Buffer.from(`${username}:${password}`, "utf8").toString("base64");
  const config = { auths: { [registry]: { username, password, auth } } };
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: PULL_SECRET_NAME, namespace: namespaceName(tool), labels: toolLabels(tool) },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": Buffer.from(JSON.stringify(config), "utf8").toString("base64") },
  };
}
