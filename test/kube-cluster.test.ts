import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kubeAssets, startKubeCluster, type KubeCluster } from "./helpers/kube-cluster.js";

// The harness itself: a real apiserver, controller-manager and scheduler make a Deployment's pods and
// bind them to the stand-in Node, which reports them Ready; pods/log goes through the apiserver to the
// stand-in kubelet. If this fails, test/kubernetes-real.test.ts cannot mean anything.

const assets = kubeAssets();
if (assets.skip) console.warn(`kube-cluster tests skipped: ${assets.skip}`);

describe.skipIf(assets.skip !== undefined)("real Kubernetes control plane", () => {
  let cluster: KubeCluster;
  beforeAll(async () => {
    cluster = await startKubeCluster();
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("rolls out a Deployment onto the stand-in Node and serves its pod's log through pods/log", async () => {
    cluster.script("harness", "hello", { logs: ["line one", "line two"] });
    const create = await cluster.kubectlRun(
      "admin",
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "List",
        items: [
          { apiVersion: "v1", kind: "Namespace", metadata: { name: "harness" } },
          {
            apiVersion: "apps/v1",
            kind: "Deployment",
            metadata: { name: "hello", namespace: "harness" },
            spec: {
              replicas: 2,
              selector: { matchLabels: { app: "hello" } },
              template: {
                metadata: { labels: { app: "hello" } },
                spec: { containers: [{ name: "web", image: "registry.example/hello:1" }] },
              },
            },
          },
        ],
      }),
    );
    expect(create.stderr).toBe("");
    const rollout = await cluster.kubectlRun("admin", [
      "-n",
      "harness",
      "rollout",
      "status",
      "deployment/hello",
      "--timeout=60s",
    ]);
    expect(rollout.stdout).toContain("successfully rolled out");
    const pods = await cluster.kubectlRun("admin", ["-n", "harness", "get", "pods", "-o", "name"]);
    const pod = pods.stdout.split("\n").find((l) => l.startsWith("pod/hello"));
    expect(pod).toBeDefined();
    const logs = await cluster.kubectlRun("admin", ["-n", "harness", "logs", pod!]);
    expect(logs.stdout).toBe("line one\nline two\n");
  }, 90_000);

  it("refuses the slipway user what RBAC has not granted it", async () => {
    const denied = await cluster.kubectlRun("slipway", ["get", "secrets", "-A"]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('User "slipway" cannot list resource "secrets"');
  });
});
