import type { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../../services/adapters/kubernetes/applier.js";
import { KubernetesJobsRuntime } from "../../services/adapters/kubernetes/jobs-runtime.js";
import { renderAll, type ToolWorkload } from "../../services/domain/kubernetes/index.js";
import type { Release } from "../../services/domain/releases/release.js";
import { loadConfig } from "../../services/platform/env.js";
import { memoryLogger } from "../../services/platform/logger.js";
import { clusterRenderOptions } from "../../services/roles/server/profiles/kubernetes.js";
import { SLIPWAY_TEST_SUBJECT, grantSlipway, kubeAssets, startKubeCluster } from "../helpers/kube-cluster.js";
import { kubeConfigFor, startKubeDouble } from "../helpers/kube-double.js";

/**
 * On the cluster profile every tool namespace gets a NetworkPolicy that admits connections only from
 * the tool's own pods and the ingress controller's namespace, so another tool's pods cannot reach its
 * pods or Services directly. Against the HTTP double of the Kubernetes API (real client-node, real
 * HTTP) and against a real kube-apiserver (test/helpers/kube-cluster.ts), which also validates the
 * policy: what is applied, with the ingress namespace the operator configured, and that pruning keeps it.
 * Enforcing the policy is the CNI plugin's work, which neither shows here (docs/kubernetes.md).
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

/** Where the objects go: the HTTP double, or a real API server as Slipway's user. */
interface Backend {
  readonly kubeConfig: KubeConfig;
  /** The tool-isolation NetworkPolicy of `namespace`, or undefined. */
  policy(
    namespace: string,
  ): Promise<{ spec?: unknown; metadata: { labels?: Record<string, string> } } | undefined>;
  close(): Promise<void>;
}

const assets = kubeAssets();
const BACKENDS: { name: string; skip: boolean; start: () => Promise<Backend> }[] = [
  {
    name: "the API double",
    skip: false,
    start: async () => {
      const kube = await startKubeDouble();
      kube.runJobs(() => ({ lines: ["done"], exitCode: 0 }));
      return {
        kubeConfig: kubeConfigFor(kube.url),
        policy: (namespace) => Promise.resolve(kube.get("NetworkPolicy", namespace, "tool-isolation")),
        close: () => kube.close(),
      };
    },
  },
  {
    name: "a real API server",
    skip: assets.skip !== undefined,
    start: async () => {
      const cluster = await startKubeCluster();
      await grantSlipway(cluster);
      return {
        kubeConfig: cluster.kubeConfig("slipway"),
        policy: (namespace) =>
          cluster
            .api<{ spec?: unknown; metadata: { labels?: Record<string, string> } }>(
              "GET",
              `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies/tool-isolation`,
            )
            .catch(() => undefined),
        close: () => cluster.stop(),
      };
    },
  },
];

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

describe.each(BACKENDS)("tool namespaces on Kubernetes are isolated from each other, on $name", (backend) => {
  let kube: Backend;
  let applier: KubernetesApplier;

  beforeAll(async () => {
    if (backend.skip) return;
    kube = await backend.start();
    // The double answers access reviews with "allowed"; the real server checks the RoleBinding.
    applier = new KubernetesApplier(kube.kubeConfig, memoryLogger(), { subject: SLIPWAY_TEST_SUBJECT });
  }, 150_000);
  afterAll(async () => {
    await kube?.close();
  });

  it.skipIf(backend.skip)(
    "a deploy applies a NetworkPolicy admitting only the tool's pods and the ingress controller's namespace",
    async () => {
      await applier.apply(TOOL, renderAll({ tool: TOOL, workloads: [web] }, configured()), { prune: true });
      const policy = await kube.policy(NS);
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
    },
  );

  it.skipIf(backend.skip)(
    "admits the ingress namespace SLIPWAY_INGRESS_NAMESPACE names, and a later pruning deploy keeps the policy",
    async () => {
      await applier.apply(TOOL, renderAll({ tool: TOOL, workloads: [web] }, configured("traefik")), {
        prune: true,
      });
      const policy = await kube.policy(NS);
      expect(policy, "no NetworkPolicy in the tool's namespace").toBeDefined();
      expect(JSON.stringify(policy!.spec)).toContain('"kubernetes.io/metadata.name":"traefik"');
      expect(JSON.stringify(policy!.spec)).not.toContain("ingress-nginx");
    },
  );

  it.skipIf(backend.skip)("a job run in a namespace not deployed to before gets the policy too", async () => {
    const jobs = new KubernetesJobsRuntime(
      kube.kubeConfig,
      applier,
      {
        getRelease: () => Promise.resolve(RELEASE),
        listTools: () => Promise.resolve([{ name: RELEASE.tool }]),
      },
      { runner: "netpol-test", startTimeoutS: 5, ingressNamespace: "traefik", pollMs: 50 },
      memoryLogger(),
    );
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
    const policy = await kube.policy("tool-netpol-jobs");
    expect(policy, "no NetworkPolicy in the tool's namespace").toBeDefined();
    expect(JSON.stringify(policy!.spec)).toContain('"kubernetes.io/metadata.name":"traefik"');
  });
});
