import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../../test/fakes/memory-store.js";
import { testRelease } from "../../../test/helpers/releases.js";
import { memoryLogger } from "../../platform/logger.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { KubernetesObject } from "../kubernetes/index.js";
import type { Deployer } from "./deployer.js";
import type { ClusterApplier } from "../../ports/cluster-applier.js";
import { deployerOnKubernetes } from "./kubernetes-rollout.js";

// The Kubernetes rollout under the one deploy routine, over a cluster in memory that keeps the last
// applied image of the web Deployment: what the tool would run.

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const digest = (c: string) => `sha256:${c.repeat(64)}`;

describe("Kubernetes rollout", () => {
  it("an older push's release does not apply itself over a restart that went live during its rollout", async () => {
    const store = new MemoryStore();
    const push = testRelease("r1", { status: "deploying", created_at: at(0), image_digest: digest("a") });
    // `webservice restart` while the push rolls out: the same image, made later, deployed beside it.
    const restart = testRelease("r2", {
      status: "deploying",
      created_at: at(5),
      image_digest: digest("a"),
      build_id: push.build_id,
      restart_of: push.id,
      trigger: { kind: "restart", ref: "refs/heads/main" },
    });
    await store.createRelease(push);
    await store.createRelease(restart);
    let webRelease: string | undefined;
    const cluster: ClusterApplier = {
      apply: (_tool: string, objects: readonly KubernetesObject[]) => {
        const web = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "web");
        webRelease = web?.metadata.labels?.["app.kubernetes.io/version"] ?? webRelease;
        return Promise.resolve();
      },
      waitForRollout: async () => {
        // The restart's deploy runs (and goes live) while the push's waits for its pods.
        if ((await store.getRelease(restart.id))?.status === "deploying" && webRelease === push.id) {
          await deployer.deploy(restart.id, new AbortController().signal);
        }
      },
    };
    const deployer: Deployer = deployerOnKubernetes({
      store,
      cluster,
      jobs: { runOnce: () => Promise.reject(new Error("no release phase here")) },
      logs: { append: () => Promise.resolve() } as unknown as BuildLogs,
      logger: memoryLogger(),
      options: {
        render: { domain: "toolforge.example", ingressClassName: "nginx" },
        rolloutTimeoutS: 5,
        memoryMb: 256,
      },
    });

    await deployer.deploy(push.id, new AbortController().signal);

    expect((await store.getRoute("t"))?.release_id).toBe(restart.id);
    expect(webRelease).toBe(restart.id);
    expect(await store.getRelease(restart.id)).toMatchObject({ status: "live" });
    expect(await store.getRelease(push.id)).toMatchObject({ status: "superseded" });
  });
});
