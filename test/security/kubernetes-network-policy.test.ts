import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../../services/adapters/kubernetes/applier.js";
import { KubernetesJobsRuntime } from "../../services/adapters/kubernetes/jobs-runtime.js";
import { renderAll, type ToolWorkload } from "../../services/domain/kubernetes/index.js";
import type { Release } from "../../services/domain/releases/release.js";
import { loadConfig } from "../../services/platform/env.js";
import { memoryLogger } from "../../services/platform/logger.js";
import { clusterRenderOptions } from "../../services/roles/server/kubernetes-wiring.js";
import { kubeConfigFor, startKubeDouble, type KubeDouble } from "../helpers/kube-double.js";

/**
 * On the cluster profile every tool namespace gets a NetworkPolicy that admits connections only from
 * the tool's own pods and the ingress controller's namespace, so another tool's pods cannot reach its
 * pods or Services directly. Against the HTTP double of the Kubernetes API (real client-node, real
 * HTTP): what is applied, with the ingress namespace the operator configured, and that pruning keeps it.
 * Enforcing the policy is the CNI plugin's work, which no double shows (docs/kubernetes.md).
 */
const TOOL = "netpol";
const NS = `tool-${TOOL}`;
const IMAGE = `registry.example/tool-netpol/web@sha256:${"b".repeat(64)}`;

const web: ToolWorkload = {
  kind: "continuous-webservice",
  tool: TOOL,
  component: "web",
  image: IMAGE,
  command: { process: "web" },
  releaseId: "r1",
  commit: "0123456789abcdef0123456789abcdef01234567",
};

const RELEASE: Release = {
  id: "r1",
  tool: "netpol-jobs",
  component: "web",
  build_id: "b1",
  commit: web.commit,
  image: "registry.example/tool-netpol-jobs/web:0123456",
  image_digest: `sha256:${"b".repeat(64)}`,
  trigger: { kind: "api", ref: "refs/heads/main" },
  status: "live",
  created_at: new Date().toISOString(),
};

let kube: KubeDouble;
let applier: KubernetesApplier;

beforeAll(async () => {
  kube = await startKubeDouble();
  applier = new KubernetesApplier(kubeConfigFor(kube.url), memoryLogger());
});
afterAll(async () => {
  await kube.close();
});

const configured = (ingressNamespace?: string) =>
  clusterRenderOptions(
    loadConfig(
      {
        SLIPWAY_RUNTIME: "kubernetes",
        SLIPWAY_INGRESS_DOMAIN: "toolforge.example",
        ...(ingressNamespace ? { SLIPWAY_INGRESS_NAMESPACE: ingressNamespace } : {}),
      },
      "/repo",
    ),
  );

describe("tool namespaces on Kubernetes are isolated from each other", () => {
  it("a deploy applies a NetworkPolicy admitting only the tool's pods and the ingress controller's namespace", async () => {
    await applier.apply(TOOL, renderAll({ tool: TOOL, workloads: [web] }, configured()), { prune: true });
    const policy = kube.get("NetworkPolicy", NS, "tool-isolation");
    expect(policy, "no NetworkPolicy in the tool's namespace").toBeDefined();
    // Sent as rendered: client-node's typed form calls `from` `_from`, which must not reach the server.
    expect(policy!.spec).toEqual({
      podSelector: {},
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [
            { podSelector: {} },
            { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } },
          ],
        },
      ],
    });
    expect(policy!.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "slipway",
      "slipway.dev/tool": TOOL,
    });
  });

  it("admits the ingress namespace SLIPWAY_INGRESS_NAMESPACE names, and a later pruning deploy keeps the policy", async () => {
    await applier.apply(TOOL, renderAll({ tool: TOOL, workloads: [web] }, configured("traefik")), {
      prune: true,
    });
    const policy = kube.get("NetworkPolicy", NS, "tool-isolation");
    expect(policy, "no NetworkPolicy in the tool's namespace").toBeDefined();
    expect(JSON.stringify(policy!.spec)).toContain('"kubernetes.io/metadata.name":"traefik"');
    expect(JSON.stringify(policy!.spec)).not.toContain("ingress-nginx");
  });

  it("a job run in a namespace not deployed to before gets the policy too", async () => {
    const jobs = new KubernetesJobsRuntime(
      kubeConfigFor(kube.url),
      applier,
      {
        getRelease: () => Promise.resolve(RELEASE),
        listTools: () => Promise.resolve([{ name: RELEASE.tool }]),
      },
      { runner: "netpol-test", startTimeoutS: 5, ingressNamespace: "traefik", pollMs: 50 },
      memoryLogger(),
    );
    kube.runJobs(() => ({ lines: ["done"], exitCode: 0 }));
    const run = await jobs.start(
      {
        tool: "netpol-jobs",
        job: "once",
        runId: "01hnetpolrun0000000000001",
        image: IMAGE,
        releaseId: RELEASE.id,
        command: "true",
        env: {},
        memoryMb: 128,
      },
      () => undefined,
    );
    await run.exited;
    const policy = kube.get("NetworkPolicy", "tool-netpol-jobs", "tool-isolation");
    expect(policy, "no NetworkPolicy in the tool's namespace").toBeDefined();
    expect(JSON.stringify(policy!.spec)).toContain('"kubernetes.io/metadata.name":"traefik"');
  });
});
