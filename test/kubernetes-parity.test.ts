import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesRuntime } from "../services/adapters/kubernetes/runtime.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { JobService } from "../services/domain/jobs/job-service.js";
import {
  renderAll,
  renderEnvSecret,
  type KubernetesObject,
  type ToolWorkload,
} from "../services/domain/kubernetes/index.js";
import { imageByDigest } from "../services/domain/releases/deployer.js";
import { KubernetesDeployer } from "../services/domain/releases/kubernetes-deployer.js";
import type { Release } from "../services/domain/releases/release.js";
import { PipelineError, type SlipwayError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import {
  grantSlipway,
  kubeAssets,
  startKubeCluster,
  type AuditedRequest,
  type KubeCluster,
} from "./helpers/kube-cluster.js";
import { startRedis } from "./helpers/redis.js";

// Issue 14: the behaviours test/kubernetes-apply.test.ts and test/kubernetes-deploy.test.ts show
// against the HTTP double of the API server, shown again against a real kube-apiserver v1.24 with its
// controller-manager and scheduler (test/helpers/kube-cluster.ts): real server-side apply and field
// managers, real validation, the real Deployment and Job controllers. The stand-in kubelet plays what a
// node reports (Ready pods, exit codes, a container waiting on ImagePullBackOff or crash-looping); the
// events a kubelet would post, the tests post as the admin. What stays double-only, and why, is the
// table in docs/kubernetes.md.

const assets = kubeAssets();
if (assets.skip) console.warn(`kubernetes-parity tests skipped: ${assets.skip}`);

const OPTIONS = { domain: "toolforge.example", ingressClassName: "nginx" };
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const image = (tool: string, n: number) =>
  `registry.example/tool-${tool}/web@sha256:${String(n).repeat(64).slice(0, 64)}`;

let cluster: KubeCluster;
let redis: Awaited<ReturnType<typeof startRedis>>;

beforeAll(async () => {
  if (assets.skip) return;
  [cluster, redis] = await Promise.all([startKubeCluster({ audit: true }), startRedis()]);
  await grantSlipway(cluster);
}, 150_000);

afterAll(async () => {
  await cluster?.stop();
  await redis?.stop();
});

type Obj = {
  metadata: {
    name: string;
    generation?: number;
    resourceVersion?: string;
    managedFields?: { manager: string; operation: string }[];
  };
  spec?: unknown;
  status?: unknown;
  [key: string]: unknown;
};

/** The object at `apiPath` as the admin reads it, or undefined when there is none (404). */
async function read<T = Obj>(apiPath: string): Promise<T | undefined> {
  return cluster.api<T>("GET", apiPath).catch((error: unknown) => {
    if (String(error).includes(": 404 ")) return undefined;
    throw error;
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Slipway's requests about `namespace` (and the Namespace itself), in the order the apiserver got them. */
async function sentTo(namespace: string): Promise<AuditedRequest[]> {
  // The audit log is written as each response completes: a moment for the last line.
  await new Promise((r) => setTimeout(r, 300));
  return (await cluster.requests()).filter(
    (r) => r.path.includes(`/namespaces/${namespace}/`) || r.path.endsWith(`/namespaces/${namespace}`),
  );
}

/** Posts an Event about a pod `agoS` seconds ago, as the kubelet does when a pull fails. */
async function podEvent(
  namespace: string,
  pod: string,
  reason: string,
  message: string,
  agoS = 0,
): Promise<void> {
  const at = new Date(Date.now() - agoS * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  await cluster.api("POST", `/api/v1/namespaces/${namespace}/events`, {
    metadata: { generateName: `${pod}.`, namespace },
    involvedObject: { kind: "Pod", name: pod, namespace, apiVersion: "v1" },
    type: "Warning",
    reason,
    message,
    firstTimestamp: at,
    lastTimestamp: at,
    count: 1,
    source: { component: "kubelet", host: "stand-in-node" },
  });
}

/** The name of the first pod in `namespace` whose name starts with `prefix` (the kubelet stand-in made it). */
async function podNamed(namespace: string, prefix: string, phase?: string): Promise<string> {
  return waitFor(`a pod ${prefix}* in ${namespace}`, async () => {
    const pods = await cluster.api<{ items: { metadata: { name: string }; status?: { phase?: string } }[] }>(
      "GET",
      `/api/v1/namespaces/${namespace}/pods`,
    );
    return pods.items.find(
      (p) => p.metadata.name.startsWith(prefix) && (!phase || p.status?.phase === phase),
    )?.metadata.name;
  });
}

function workloads(tool: string, releaseId = "r1"): ToolWorkload[] {
  const base = { tool, image: image(tool, 1), releaseId, commit: COMMIT };
  return [
    {
      ...base,
      kind: "continuous-webservice",
      component: "web",
      command: { process: "web" },
      env: { names: ["API_KEY"] },
    },
    { ...base, kind: "continuous-worker", component: "bot", command: { process: "worker" } },
    {
      ...base,
      kind: "scheduled",
      component: "nightly",
      command: { shell: "python3 cleanup.py" },
      schedule: "@daily",
    },
  ];
}

function rendered(tool: string, ws = workloads(tool)): KubernetesObject[] {
  return [
    ...renderAll({ tool, workloads: ws }, OPTIONS),
    renderEnvSecret(tool, "web", { API_KEY: "s3cr3t" }),
  ];
}

const slipwayLabels = (tool: string, component: string) => ({
  "app.kubernetes.io/managed-by": "slipway",
  "slipway.dev/tool": tool,
  "slipway.dev/component": component,
});

/** A Deployment with no pods (replicas 0), made by someone other than Slipway's applier. */
const idleDeployment = (name: string, labels: Record<string, string>) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name, labels },
  spec: {
    replicas: 0,
    selector: { matchLabels: { idle: name } },
    template: {
      metadata: { labels: { idle: name } },
      spec: { containers: [{ name: "c", image: "registry.example/idle" }] },
    },
  },
});

const applierFor = (logger = memoryLogger()) => new KubernetesApplier(cluster.kubeConfig("slipway"), logger);

describe.skipIf(assets.skip !== undefined)("KubernetesApplier on a real API server", () => {
  it("server-side applies every object as field manager slipway, exactly as rendered", async () => {
    const tool = "pa";
    const ns = `tool-${tool}`;
    const result = await applierFor().apply(tool, rendered(tool));

    const patches = (await sentTo(ns)).filter((r) => r.verb === "patch");
    expect(patches.map((r) => r.path)).toEqual([
      `/api/v1/namespaces/${ns}`,
      `/api/v1/namespaces/${ns}/resourcequotas/tool-quota`,
      `/api/v1/namespaces/${ns}/limitranges/tool-limits`,
      `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/tool-isolation`,
      `/api/v1/namespaces/${ns}/secrets/web-env`,
      `/api/v1/namespaces/${ns}/services/web`,
      `/apis/apps/v1/namespaces/${ns}/deployments/bot`,
      `/apis/apps/v1/namespaces/${ns}/deployments/web`,
      `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web`,
      `/apis/batch/v1/namespaces/${ns}/cronjobs/nightly`,
    ]);
    for (const p of patches) expect(p.query.fieldManager).toBe("slipway");
    const web = await read(`/apis/apps/v1/namespaces/${ns}/deployments/web`);
    expect(web?.metadata.managedFields).toEqual([
      expect.objectContaining({ manager: "slipway", operation: "Apply" }),
    ]);
    // LimitRange `default` is the field client-node's typed models would drop; the server keeps it.
    const limits = await read<{ spec: { limits: { default?: unknown }[] } }>(
      `/api/v1/namespaces/${ns}/limitranges/tool-limits`,
    );
    expect(limits?.spec.limits[0]?.default).toEqual({ cpu: "100m", memory: "512Mi" });
    for (const o of rendered(tool)) {
      expect(result.applied.map((a) => `${a.kind}/${a.name}`)).toContain(`${o.kind}/${o.metadata.name}`);
    }
    const applied = result.applied.find((a) => a.kind === "Deployment" && a.name === "web");
    expect(applied?.generation).toBe(1);
    expect(applied?.resourceVersion).toBe(web?.metadata.resourceVersion);
    expect(await read(`/apis/batch/v1/namespaces/${ns}/cronjobs/nightly`)).toBeDefined();
    expect(await read(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web`)).toBeDefined();
    expect(result.pruned).toEqual([]);
  }, 60_000);

  it("prunes only the tool's slipway-managed objects that are no longer rendered", async () => {
    const tool = "pp";
    const ns = `tool-${tool}`;
    await applierFor().apply(tool, rendered(tool));
    await cluster.api("POST", "/api/v1/namespaces", { metadata: { name: `${ns}-other` } });
    const post = (namespace: string, plural: string, body: unknown, group = "/apis/apps/v1") =>
      cluster.api("POST", `${group}/namespaces/${namespace}/${plural}`, body);
    await post(ns, "deployments", idleDeployment("old-bot", slipwayLabels(tool, "old-bot")));
    await post(
      ns,
      "services",
      {
        metadata: { name: "old-bot", labels: slipwayLabels(tool, "old-bot") },
        spec: { ports: [{ port: 80 }] },
      },
      "/api/v1",
    );
    await post(ns, "deployments", idleDeployment("by-hand", { app: "by-hand" }));
    await post(`${ns}-other`, "deployments", idleDeployment("web", slipwayLabels("other", "web")));
    await post(
      ns,
      "jobs",
      {
        metadata: { name: "migrate-r0", labels: slipwayLabels(tool, "migrate") },
        spec: {
          suspend: true,
          template: {
            spec: { restartPolicy: "Never", containers: [{ name: "c", image: "registry.example/idle" }] },
          },
        },
      },
      "/apis/batch/v1",
    );

    const result = await applierFor().apply(
      tool,
      rendered(
        tool,
        workloads(tool).filter((w) => w.component !== "bot"),
      ),
      { prune: true },
    );

    expect(result.pruned.map((p) => `${p.kind}/${p.name}`).sort()).toEqual([
      "Deployment/bot",
      "Deployment/old-bot",
      "Service/old-bot",
    ]);
    const deployments = `/apis/apps/v1/namespaces/${ns}/deployments`;
    expect(await read(`${deployments}/bot`)).toBeUndefined();
    expect(await read(`${deployments}/old-bot`)).toBeUndefined();
    expect(await read(`/api/v1/namespaces/${ns}/services/old-bot`)).toBeUndefined();
    expect(await read(`${deployments}/by-hand`)).toBeDefined();
    expect(await read(`/apis/apps/v1/namespaces/${ns}-other/deployments/web`)).toBeDefined();
    expect(await read(`/apis/batch/v1/namespaces/${ns}/jobs/migrate-r0`)).toBeDefined();
    expect(await read(`${deployments}/web`)).toBeDefined();
    expect(await read(`/api/v1/namespaces/${ns}/secrets/web-env`)).toBeDefined();
    // Lists asked the API server for the tool's managed objects only.
    const lists = (await sentTo(ns)).filter((r) => r.verb === "list");
    expect(lists.length).toBeGreaterThan(0);
    for (const l of lists)
      expect(l.query.labelSelector).toBe(`app.kubernetes.io/managed-by=slipway,slipway.dev/tool=${tool}`);
  }, 60_000);

  it("turns the server's own 422 into an error naming the object and the field, and stops there", async () => {
    const tool = "pi";
    const ns = `tool-${tool}`;
    const objects = rendered(tool).map((o) =>
      o.kind === "Deployment" && o.metadata.name === "web"
        ? { ...o, spec: { ...(o as { spec?: object }).spec, replicas: -1 } }
        : o,
    );
    const error = await applierFor()
      .apply(tool, objects)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(PipelineError);
    const message = (error as Error).message;
    expect(message).toContain(`Deployment ${ns}/web`);
    expect(message).toContain("422 Invalid");
    expect(message).toContain("spec.replicas");
    expect(message).toContain("must be greater than or equal to 0");
    expect(message).not.toContain("Headers");
    // What comes after the Deployment in apply order was not sent.
    expect(await read(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web`)).toBeUndefined();
    expect(await read(`/apis/batch/v1/namespaces/${ns}/cronjobs/nightly`)).toBeUndefined();
  }, 60_000);

  it("takes over fields of an earlier Slipway but refuses to undo someone's kubectl edit", async () => {
    const tool = "pc";
    const ns = `tool-${tool}`;
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/web`;
    await applierFor().apply(tool, rendered(tool));
    // An earlier Slipway (another field manager of ours) applied a different replica count.
    await cluster.api(
      "PATCH",
      `${path}?fieldManager=slipway-0.9&force=true`,
      { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "web" }, spec: { replicas: 3 } },
      "application/apply-patch+yaml",
    );
    await applierFor().apply(tool, rendered(tool));
    expect(await read<{ spec: { replicas: number } }>(path)).toMatchObject({ spec: { replicas: 1 } });
    const forced = (await sentTo(ns)).filter((r) => r.verb === "patch" && r.path === path);
    expect(forced.map((r) => r.query.force)).toEqual(["false", "false", "true"]);

    // Someone scales it by hand: an update owned by the manager kubectl names "kubectl-edit".
    await cluster.api(
      "PATCH",
      `${path}?fieldManager=kubectl-edit`,
      { spec: { replicas: 2 } },
      "application/merge-patch+json",
    );
    const error = await applierFor()
      .apply(tool, rendered(tool))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(PipelineError);
    expect((error as Error).message).toMatch(
      new RegExp(`Deployment ${ns}/web was changed outside Slipway: \\.spec\\.replicas \\(conflict with "kubectl-edit"`),
    );
    expect(await read<{ spec: { replicas: number } }>(path)).toMatchObject({ spec: { replicas: 2 } });
    const patches = (await sentTo(ns)).filter((r) => r.verb === "patch" && r.path === path);
    expect(patches.map((r) => r.query.force)).toEqual(["false", "false", "true", "false"]);
  }, 60_000);

  it("refuses objects outside the tool's namespace before sending anything", async () => {
    const foreign = renderAll({ tool: "pf-other", workloads: [] }, OPTIONS);
    await expect(applierFor().apply("pf", [...rendered("pf"), ...foreign])).rejects.toThrow(
      /is not in tool-pf/,
    );
    expect(await sentTo("tool-pf")).toEqual([]);
    expect(await read("/api/v1/namespaces/tool-pf")).toBeUndefined();
    expect(await read("/api/v1/namespaces/tool-pf-other")).toBeUndefined();
  });
});

describe.skipIf(assets.skip !== undefined)("KubernetesApplier.waitForRollout on a real API server", () => {
  it("returns once the Deployment controller reports the new replica available", async () => {
    const tool = "pw";
    await applierFor().apply(tool, rendered(tool));
    const deployment = await applierFor().waitForRollout(`tool-${tool}`, "web", { timeoutS: 60, pollMs: 100 });
    expect(deployment.status?.availableReplicas).toBe(1);
    expect(deployment.status?.observedGeneration).toBe(deployment.metadata?.generation);
  }, 90_000);

  it("explains a rollout stuck on ImagePullBackOff from the new pod's status and events", async () => {
    const tool = "pb";
    const ns = `tool-${tool}`;
    await applierFor().apply(tool, rendered(tool));
    await applierFor().waitForRollout(ns, "web", { timeoutS: 60, pollMs: 100 });
    const oldPod = await podNamed(ns, "web-", "Running");
    cluster.script(ns, "web-", {
      waiting: { reason: "ImagePullBackOff", message: `Back-off pulling image "${image(tool, 2)}"` },
    });
    const next = workloads(tool, "r2").map((w) => ({ ...w, image: image(tool, 2) }));
    // A deadline of 1 s instead of the rendered 600 s, so the real controller gives up quickly.
    const objects = rendered(tool, next).map((o) =>
      o.kind === "Deployment" ? { ...o, spec: { ...(o as { spec?: object }).spec, progressDeadlineSeconds: 1 } } : o,
    );
    await applierFor().apply(tool, objects);
    const newPod = await podNamed(ns, "web-", "Pending");
    // Posted out of order: the report sorts them, oldest first.
    await podEvent(ns, newPod, "Failed", "Error: ImagePullBackOff");
    await podEvent(ns, newPod, "Failed", `Failed to pull image "${image(tool, 2)}": not found`, 20);
    await podEvent(ns, oldPod, "Unhealthy", "Readiness probe failed long ago", 3600);

    const error = await applierFor()
      .waitForRollout(ns, "web", { timeoutS: 60, pollMs: 100 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(PipelineError);
    expect((error as SlipwayError).code).toBe("deploy_failed");
    const message = (error as Error).message;
    expect(message).toContain("progress deadline exceeded");
    expect(message).toContain("the previous pods keep serving");
    expect(message).toContain(`pod ${newPod}: Pending`);
    expect(message).toContain("waiting: ImagePullBackOff");
    expect(message).toContain(`Failed to pull image "${image(tool, 2)}": not found`);
    // Only the new revision's pods and their warnings, oldest first.
    expect(message).not.toContain(oldPod);
    expect(message).not.toContain("Readiness probe failed long ago");
    expect(message.indexOf("not found")).toBeLessThan(message.indexOf("Error: ImagePullBackOff"));
    // The previous pod still runs.
    expect(await read(`/api/v1/namespaces/${ns}/pods/${oldPod}`)).toMatchObject({
      status: { phase: "Running" },
    });
  }, 90_000);

  it("gives up after the timeout and reports a crash-looping container's exit code", async () => {
    const tool = "pl";
    const ns = `tool-${tool}`;
    await applierFor().apply(tool, rendered(tool));
    await applierFor().waitForRollout(ns, "web", { timeoutS: 60, pollMs: 100 });
    cluster.script(ns, "web-", {
      waiting: { reason: "CrashLoopBackOff", message: "back-off 1m20s restarting failed container" },
      lastExit: { exitCode: 3, reason: "Error", restarts: 4 },
    });
    await applierFor().apply(
      tool,
      rendered(
        tool,
        workloads(tool, "r2").map((w) => ({ ...w, image: image(tool, 2) })),
      ),
    );
    const error = await applierFor()
      .waitForRollout(ns, "web", { timeoutS: 3, pollMs: 100 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(PipelineError);
    const message = (error as Error).message;
    expect(message).toContain("not rolled out within 3 s (1 pod of the previous revision still running)");
    expect(message).toContain("waiting: CrashLoopBackOff");
    expect(message).toContain("restarts=4");
    expect(message).toContain("last exit: code 3 (Error)");
  }, 90_000);

  it("stops waiting when the deploy is cancelled", async () => {
    const tool = "px";
    const ns = `tool-${tool}`;
    cluster.script(ns, "web-", { neverReady: true });
    await applierFor().apply(tool, rendered(tool));
    const controller = new AbortController();
    const waiting = applierFor().waitForRollout(ns, "web", {
      timeoutS: 600,
      pollMs: 50,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error("cancelled by test")), 300);
    await expect(waiting).rejects.toThrow("cancelled by test");
  }, 60_000);
});
