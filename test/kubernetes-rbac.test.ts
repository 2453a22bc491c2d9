import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesJobsRuntime } from "../services/adapters/kubernetes/jobs-runtime.js";
import { KubernetesRuntime } from "../services/adapters/kubernetes/runtime.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { renderEnvSecret, renderNamespace } from "../services/domain/kubernetes/index.js";
import { deployerOnKubernetes } from "../services/domain/releases/kubernetes-rollout.js";
import type { Release } from "../services/domain/releases/release.js";
import { ToolService } from "../services/domain/tools/tool-service.js";
import { memoryLogger } from "../services/platform/logger.js";
import {
  SLIPWAY_TEST_SUBJECT,
  grantSlipway,
  kubeAssets,
  startKubeCluster,
  type KubeCluster,
} from "./helpers/kube-cluster.js";
import { startRedis } from "./helpers/redis.js";

// Issue 14, item 1: Slipway runs with exactly infra/kubernetes/rbac (grantSlipway applies it with
// `kubectl apply -k`), against a real kube-apiserver with RBAC. It deploys, runs a job, recovers a
// runner's leftovers at start and prunes, all through the RoleBinding it makes in each tool
// namespace; it cannot read kube-system's Secrets, relabel kube-system, nor list across namespaces.

const assets = kubeAssets();
if (assets.skip) console.warn(`kubernetes-rbac tests skipped: ${assets.skip}`);

const TOOL = "rb";
const NS = "tool-rb";
const REGISTRY = "registry.example:5000/tool-rb/web";
const OPTIONS = { domain: "toolforge.example", ingressClassName: "nginx" };
const RUNNER = "slipway-jobs-rbac";
const CONFIG = parseComponentsConfig(
  [
    "config_version: v1beta1",
    "components:",
    "  web:",
    "    run:",
    "      command: web",
    "      port: 8000",
    "",
  ].join("\n"),
  "slipway.yaml",
);

describe.skipIf(assets.skip !== undefined)(
  "Slipway with its least-privilege role on a real API server",
  () => {
    let cluster: KubeCluster;
    let redis: Awaited<ReturnType<typeof startRedis>>;
    let store: RedisStore;
    let client: Redis;

    beforeAll(async () => {
      [cluster, redis] = await Promise.all([startKubeCluster({ audit: true }), startRedis()]);
      store = RedisStore.create(redis.url);
      client = new Redis(redis.url);
      const tools = new ToolService(store, {
        publicUrl: "http://127.0.0.1:8080",
        webUrl: (t) => `http://${t}.toolforge.example/`,
      });
      // rb: deployed here; rbold: a namespace an earlier Slipway made (no RoleBinding yet); rbnew: never deployed.
      for (const t of [TOOL, "rbold", "rbnew"]) await tools.create(t);
      await grantSlipway(cluster);
    }, 150_000);

    afterAll(async () => {
      await store?.close();
      client?.disconnect();
      await cluster?.stop();
      await redis?.stop();
    });

    const applier = () =>
      new KubernetesApplier(cluster.kubeConfig("slipway"), memoryLogger(), { subject: SLIPWAY_TEST_SUBJECT });

    async function newRelease(n: number): Promise<Release> {
      const now = new Date(Date.now() + n).toISOString();
      const build: Build = {
        id: `b${n}`,
        tool: TOOL,
        component: "web",
        commit: `${n}`.repeat(40),
        ref: "refs/heads/main",
        source_url: "http://example/git/rb",
        trigger: { kind: "git_push", ref: "refs/heads/main" },
        status: "success",
        created_at: now,
      };
      await store.createBuild(build);
      const release: Release = {
        id: `r${n}`,
        tool: TOOL,
        component: "web",
        build_id: build.id,
        commit: build.commit,
        image: `${REGISTRY}:${n}`,
        image_digest: `sha256:${`${n}`.repeat(64)}`,
        trigger: build.trigger,
        status: "deploying",
        created_at: now,
        processes: ["web"],
        config: CONFIG,
      };
      await store.createRelease(release);
      return release;
    }

    function jobsRuntime(): KubernetesJobsRuntime {
      const kc = cluster.kubeConfig("slipway");
      return new KubernetesJobsRuntime(
        kc,
        new KubernetesApplier(kc, memoryLogger(), { subject: SLIPWAY_TEST_SUBJECT }),
        store,
        { runner: RUNNER, startTimeoutS: 30, pollMs: 200, ...OPTIONS },
        memoryLogger(),
      );
    }

    it("deploys a tool into a namespace it creates and binds, runs a job there, and lists only per tool namespace", async () => {
      const logger = memoryLogger();
      const a = applier();
      const release = await newRelease(1);
      await deployerOnKubernetes({
        store,
        cluster: a,
        jobs: new KubernetesRuntime(a, store, { render: OPTIONS, rolloutTimeoutS: 60, pollMs: 200 }, logger),
        logs: RedisBuildLogs.create(client),
        logger,
        env: { envFor: () => Promise.resolve({ API_KEY: "k" }) },
        options: {
          render: OPTIONS,
          rolloutTimeoutS: 60,
          memoryMb: 256,
          pollMs: 200,
          releasePhaseTimeoutS: 30,
        },
      }).deploy(release.id, new AbortController().signal);
      const deployed = await store.getRelease(release.id);
      expect(deployed?.status, deployed?.reason).toBe("live");
      const ns = await cluster.api<{ metadata: { labels: Record<string, string> } }>(
        "GET",
        `/api/v1/namespaces/${NS}`,
      );
      expect(ns.metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
      const binding = await cluster.api<{
        roleRef: { name: string };
        subjects: { kind: string; name: string }[];
      }>("GET", `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/slipway`);
      expect(binding.roleRef.name).toBe("slipway-tool");
      expect(binding.subjects).toEqual([expect.objectContaining({ kind: "User", name: "slipway" })]);

      cluster.script(NS, "report-", { logs: ["ran under the role"], exitCode: 0 });
      const lines: string[] = [];
      const process = await jobsRuntime().start(
        {
          tool: TOOL,
          job: "report",
          runId: "run1",
          image: `${REGISTRY}@${release.image_digest}`,
          releaseId: release.id,
          command: "./report",
          env: { TOKEN: "t" },
          memoryMb: 128,
        },
        (l) => lines.push(...l),
      );
      expect(await process.exited).toEqual({ exitCode: 0 });
      expect(lines).toEqual(["ran under the role"]);

      const requests = await cluster.requests();
      const refused = requests.filter((r) => r.code === 403);
      expect(refused, JSON.stringify(refused)).toEqual([]);
      const acrossNamespaces = requests.filter(
        (r) => (r.verb === "list" || r.verb === "watch") && !r.namespace,
      );
      expect(acrossNamespaces, JSON.stringify(acrossNamespaces)).toEqual([]);
    }, 150_000);

    it("at start removes the runner's leftovers in each tool namespace, binding one an earlier Slipway made", async () => {
      const labels = {
        "app.kubernetes.io/managed-by": "slipway",
        "slipway.dev/runner": RUNNER,
        "slipway.dev/run": "old1",
      };
      // As an earlier Slipway (with cluster-wide rights) left them: a namespace with its labels, no RoleBinding.
      await cluster.api("POST", "/api/v1/namespaces", {
        metadata: {
          name: "tool-rbold",
          labels: { "app.kubernetes.io/managed-by": "slipway", "slipway.dev/tool": "rbold" },
        },
      });
      for (const namespace of [NS, "tool-rbold", "default"]) {
        await cluster.api("POST", `/apis/batch/v1/namespaces/${namespace}/jobs`, {
          metadata: { name: "old-run", labels },
          spec: {
            suspend: true,
            template: {
              metadata: { labels },
              spec: { restartPolicy: "Never", containers: [{ name: "c", image: "registry.example/x:1" }] },
            },
          },
        });
        await cluster.api("POST", `/api/v1/namespaces/${namespace}/secrets`, {
          metadata: { name: "old-run-env", labels },
          stringData: { A: "1" },
        });
      }
      expect(await jobsRuntime().removeLeftovers()).toBe(2);
      for (const namespace of [NS, "tool-rbold"]) {
        await expect(
          cluster.api("GET", `/apis/batch/v1/namespaces/${namespace}/jobs/old-run`),
        ).rejects.toThrow(/404/);
        await expect(
          cluster.api("GET", `/api/v1/namespaces/${namespace}/secrets/old-run-env`),
        ).rejects.toThrow(/404/);
      }
      // Not a tool namespace: not Slipway's to list, let alone clean.
      await cluster.api("GET", "/apis/batch/v1/namespaces/default/jobs/old-run");
      // The never-deployed tool has no namespace, and none was made for it.
      await expect(cluster.api("GET", "/api/v1/namespaces/tool-rbnew")).rejects.toThrow(/404/);
    }, 60_000);

    it("prunes an object the tool no longer renders", async () => {
      const a = applier();
      const base = renderNamespace(TOOL);
      await a.apply(TOOL, [...base, renderEnvSecret(TOOL, "gone", { A: "1" })]);
      await cluster.api("GET", `/api/v1/namespaces/${NS}/secrets/gone-env`);
      const result = await a.apply(TOOL, base, { prune: true });
      expect(result.pruned).toContainEqual({ kind: "Secret", namespace: NS, name: "gone-env" });
      await expect(cluster.api("GET", `/api/v1/namespaces/${NS}/secrets/gone-env`)).rejects.toThrow(/404/);
    }, 60_000);

    it("refuses a namespace of the tool's name that Slipway did not make, instead of binding itself in it", async () => {
      await cluster.api("POST", "/api/v1/namespaces", { metadata: { name: "tool-rbnew" } });
      await expect(applier().apply("rbnew", renderNamespace("rbnew"))).rejects.toThrow(
        /^namespace tool-rbnew exists but was not made by Slipway for tool rbnew/,
      );
      await expect(
        cluster.api("GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/tool-rbnew/rolebindings/slipway"),
      ).rejects.toThrow(/404/);
    }, 60_000);

    it("cannot read kube-system's Secrets, relabel kube-system, nor list Secrets across namespaces", async () => {
      const canI = async (...args: string[]) =>
        (await cluster.kubectlRun("slipway", ["auth", "can-i", ...args])).stdout.trim();
      expect(await canI("get", "secrets", "-n", "kube-system")).toBe("no");
      expect(await canI("list", "secrets", "--all-namespaces")).toBe("no");
      expect(await canI("patch", "namespaces/kube-system", "-n", "kube-system")).toBe("no");
      expect(await canI("list", "jobs.batch", "--all-namespaces")).toBe("no");
      expect(await canI("list", "deployments.apps", "--all-namespaces")).toBe("no");
      // What it may do, so the answers above are the role's and not a cluster refusing everyone.
      expect(await canI("list", "secrets", "-n", NS)).toBe("yes");
      expect(await canI("patch", `namespaces/${NS}`, "-n", NS)).toBe("yes");
      expect(await canI("create", "namespaces")).toBe("yes");
      const relabel = await cluster.kubectlRun("slipway", [
        "label",
        "namespace",
        "kube-system",
        "pod-security.kubernetes.io/enforce=privileged",
      ]);
      expect(relabel.code).not.toBe(0);
      expect(relabel.stderr).toMatch(/forbidden/);
    }, 60_000);
  },
);
