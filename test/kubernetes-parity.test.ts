import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesConfigJobFollower } from "../services/adapters/kubernetes/config-job-logs.js";
import { KubernetesJobsRuntime } from "../services/adapters/kubernetes/jobs-runtime.js";
import { KubernetesRuntime } from "../services/adapters/kubernetes/runtime.js";
import { KubernetesWebLogFollower } from "../services/adapters/kubernetes/web-logs.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisProcessLogs } from "../services/adapters/store/redis-process-logs.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { JobService } from "../services/domain/jobs/job-service.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../services/domain/jobs/runner.js";
import {
  renderAll,
  renderEnvSecret,
  type KubernetesObject,
  type ToolWorkload,
} from "../services/domain/kubernetes/index.js";
import { imageByDigest } from "../services/domain/releases/deployer.js";
import type { Deployer } from "../services/domain/releases/deployer.js";
import { deployerOnKubernetes } from "../services/domain/releases/kubernetes-rollout.js";
import type { Release } from "../services/domain/releases/release.js";
import { WebserviceService } from "../services/domain/releases/webservice-service.js";
import { PipelineError, type SlipwayError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import type { Route } from "../services/ports/store.js";
import {
  grantSlipway,
  kubeAssets,
  SLIPWAY_TEST_SUBJECT,
  startKubeCluster,
  type AuditedRequest,
  type KubeCluster,
} from "./helpers/kube-cluster.js";
import { type JobsApi, startJobsApi } from "./helpers/jobs-api.js";
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
    return pods.items.find((p) => p.metadata.name.startsWith(prefix) && (!phase || p.status?.phase === phase))
      ?.metadata.name;
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

const applierFor = (logger = memoryLogger()) =>
  new KubernetesApplier(cluster.kubeConfig("slipway"), logger, { subject: SLIPWAY_TEST_SUBJECT });

describe.skipIf(assets.skip !== undefined)("KubernetesApplier on a real API server", () => {
  it("server-side applies every object as field manager slipway, exactly as rendered", async () => {
    const tool = "pa";
    const ns = `tool-${tool}`;
    const result = await applierFor().apply(tool, rendered(tool));

    const sent = await sentTo(ns);
    // The namespace is created (Slipway may not patch a namespace it has not bound), then bound to
    // slipway-tool; everything, the Namespace included, is applied after that.
    const bindingAt = sent.findIndex(
      (r) =>
        r.verb === "create" && r.path === `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
    );
    expect(bindingAt).toBeGreaterThanOrEqual(0);
    const patches = sent.filter((r) => r.verb === "patch");
    expect(sent.indexOf(patches[0]!)).toBeGreaterThan(bindingAt);
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
    // Slipway is the one applier; the Deployment controller's own status Update may be there beside it.
    expect(web?.metadata.managedFields?.filter((f) => f.operation === "Apply")).toEqual([
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
    // The Deployment controller's status updates move resourceVersion on; the spec's generation stays.
    expect(applied?.resourceVersion).toMatch(/^\d+$/);
    expect(web?.metadata.generation).toBe(applied?.generation);
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
      new RegExp(
        `Deployment ${ns}/web was changed outside Slipway: \\.spec\\.replicas \\(conflict with "kubectl-edit"`,
      ),
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
    const deployment = await applierFor().waitForRollout(`tool-${tool}`, "web", {
      timeoutS: 60,
      pollMs: 100,
    });
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
      o.kind === "Deployment"
        ? { ...o, spec: { ...(o as { spec?: object }).spec, progressDeadlineSeconds: 1 } }
        : o,
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

describe.skipIf(assets.skip !== undefined)("KubernetesRuntime on a real API server", () => {
  const tool = "prt";
  const ns = `tool-${tool}`;
  const release = { id: "r7", tool, commit: COMMIT } as Release;
  const runtime = () =>
    new KubernetesRuntime(
      applierFor(),
      {
        getRelease: (id) => Promise.resolve(id === release.id ? release : undefined),
        listTools: () => Promise.resolve([{ name: tool }]),
      },
      { render: OPTIONS, rolloutTimeoutS: 60, pollMs: 100 },
      memoryLogger(),
    );
  const spec = {
    tool,
    process: "web",
    releaseId: "r7",
    image: image(tool, 7),
    env: { PORT: "8000", API_KEY: "s3cr3t" },
    port: 8000,
    memoryMb: 256,
  };

  it("starts the web process as a rolled-out Deployment, reads its newest pod's log, and stops only the release that runs", async () => {
    cluster.script(ns, "web-", { logs: ["listening on 8000", "GET / 200"] });
    const app = await runtime().start(spec);
    expect(app).toEqual({
      id: `${ns}/web@r7`,
      tool,
      process: "web",
      releaseId: "r7",
      address: { host: `web.${ns}.svc`, port: 8000 },
    });
    const secret = await read<{ data: Record<string, string> }>(`/api/v1/namespaces/${ns}/secrets/web-env`);
    expect(Object.keys(secret?.data ?? {})).toEqual(["API_KEY"]); // PORT is the pod template's
    const deployment = await read<{
      spec: {
        template: {
          metadata: { labels: Record<string, string> };
          spec: { containers: { resources: { limits: { memory: string } } }[] };
        };
      };
      status: { availableReplicas?: number };
    }>(`/apis/apps/v1/namespaces/${ns}/deployments/web`);
    expect(deployment?.spec.template.metadata.labels["slipway.dev/commit"]).toBe(COMMIT);
    expect(deployment?.spec.template.spec.containers[0]?.resources.limits.memory).toBe("256Mi");
    expect(deployment?.status.availableReplicas).toBe(1);
    expect(await runtime().list(tool)).toEqual([app]);

    expect(await runtime().logs(`${ns}/web@r7`, 1)).toEqual(["GET / 200"]);
    expect(cluster.logRequests.some((p) => p.startsWith(`/containerLogs/${ns}/web-`))).toBe(true);

    const deletesBefore = (await sentTo(ns)).filter((r) => r.verb === "delete").length;
    await runtime().stop(`${ns}/web@r6`); // replaced by r7 already: nothing to do
    expect((await sentTo(ns)).filter((r) => r.verb === "delete")).toHaveLength(deletesBefore);
    await runtime().stop(`${ns}/web@r7`);
    expect(await read(`/apis/apps/v1/namespaces/${ns}/deployments/web`)).toBeUndefined();
    expect(await read(`/api/v1/namespaces/${ns}/services/web`)).toBeUndefined();
    expect(await read(`/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web`)).toBeUndefined();
    expect(await read(`/api/v1/namespaces/${ns}/secrets/web-env`)).toBeUndefined();
    expect(await runtime().list(tool)).toEqual([]);
  }, 90_000);

  it("runs a release phase once as a Job and reports its exit code and output", async () => {
    cluster.script(ns, "release-r7", { exitCode: 2, logs: ["migrating", "error: table exists"] });
    const lines: string[] = [];
    const once = {
      tool: spec.tool,
      releaseId: spec.releaseId,
      image: spec.image,
      env: spec.env,
      memoryMb: spec.memoryMb,
    };
    const result = await runtime().runOnce({ ...once, process: "release" }, "release", 60, (l) =>
      lines.push(l),
    );
    expect(result).toEqual({ code: 2, timedOut: false, tail: ["migrating", "error: table exists"] });
    expect(lines).toEqual(["migrating", "error: table exists"]);
    const job = await read<{ spec: { template: { spec: { containers: { command: string[] }[] } } } }>(
      `/apis/batch/v1/namespaces/${ns}/jobs/release-r7`,
    );
    expect(job?.spec.template.spec.containers[0]?.command).toEqual(["/cnb/process/release"]);
  }, 90_000);
});

describe.skipIf(assets.skip !== undefined)("Kubernetes deploys on a real API server", () => {
  const tool = "pd";
  const ns = `tool-${tool}`;
  const REGISTRY = `registry.example:5000/tool-${tool}/web`;
  let store: RedisStore;
  let client: Redis;
  let logs: RedisBuildLogs;
  let counter = 0;

  beforeAll(() => {
    store = RedisStore.create(redis.url);
    client = new Redis(redis.url);
    logs = RedisBuildLogs.create(client);
  });
  afterAll(async () => {
    await store?.close();
    client?.disconnect();
  });
  beforeEach(() => cluster.script(ns, "web-", {})); // web pods come up Ready unless a test says otherwise

  async function newRelease(extra: Partial<Release> = {}): Promise<Release> {
    counter++;
    const now = new Date(Date.now() + counter).toISOString();
    const build: Build = {
      id: `b${counter}`,
      tool,
      component: "web",
      commit: COMMIT,
      ref: "refs/heads/main",
      source_url: "http://example/git/pd",
      trigger: { kind: "git_push", ref: "refs/heads/main" },
      status: "deploying",
      created_at: now,
    };
    await store.createBuild(build);
    const release: Release = {
      id: `r${counter}`,
      tool,
      component: "web",
      build_id: build.id,
      commit: build.commit,
      image: `${REGISTRY}:0123456`,
      image_digest: `sha256:${String(counter).repeat(64).slice(0, 64)}`,
      trigger: build.trigger,
      status: "deploying",
      created_at: now,
      processes: ["web"],
      ...extra,
    };
    await store.createRelease(release);
    return release;
  }

  function deployer(
    hooks: {
      pullCredentials?: (tool: string) => Promise<{ registry: string; username: string; password: string }>;
      onLive?: (release: Release) => Promise<void>;
      rolloutTimeoutS?: number;
    } = {},
  ): Deployer {
    const logger = memoryLogger();
    const applier = applierFor(logger);
    const rolloutTimeoutS = hooks.rolloutTimeoutS ?? 60;
    const runtime = new KubernetesRuntime(
      applier,
      store,
      { render: OPTIONS, rolloutTimeoutS, pollMs: 100 },
      logger,
    );
    return deployerOnKubernetes({
      store,
      cluster: applier,
      jobs: runtime,
      logs,
      logger,
      env: { envFor: () => Promise.resolve({ API_KEY: "s3cr3t", PORT: "1" }) },
      pullCredentials: hooks.pullCredentials,
      onLive: hooks.onLive,
      options: { render: OPTIONS, rolloutTimeoutS, memoryMb: 256, pollMs: 100, releasePhaseTimeoutS: 30 },
    });
  }

  const logText = async (release: Release) =>
    (await logs.read(release.build_id)).map((l) => l.line).join("\n");
  type DeploymentObject = {
    spec: {
      template: { spec: { containers: { image: string; envFrom?: { secretRef: { name: string } }[] }[] } };
    };
  };
  const webImage = async () =>
    (await read<DeploymentObject>(`/apis/apps/v1/namespaces/${ns}/deployments/web`))?.spec.template.spec
      .containers[0]?.image;

  it("applies the release's objects and makes it live once the Deployment has rolled out", async () => {
    const first = await newRelease();
    await deployer().deploy(first.id, new AbortController().signal);
    expect(await store.getRelease(first.id)).toMatchObject({ status: "live" });
    expect(await store.getRoute(tool)).toMatchObject({
      release_id: first.id,
      host: `web.${ns}.svc`,
      port: 8000,
    });
    const deployment = await read<DeploymentObject>(`/apis/apps/v1/namespaces/${ns}/deployments/web`);
    const container = deployment!.spec.template.spec.containers[0]!;
    expect(container.image).toBe(`${REGISTRY}@${first.image_digest}`);
    expect(container.envFrom?.[0]?.secretRef.name).toBe("web-env");
    const secret = await read<{ data: Record<string, string> }>(`/api/v1/namespaces/${ns}/secrets/web-env`);
    expect(secret?.data).toEqual({ API_KEY: Buffer.from("s3cr3t").toString("base64") }); // PORT is ours
    expect(await read(`/api/v1/namespaces/${ns}/services/web`)).toBeDefined();
    const ingress = await read<{ spec: { rules: { host: string }[] } }>(
      `/apis/networking.k8s.io/v1/namespaces/${ns}/ingresses/web`,
    );
    expect(ingress?.spec.rules[0]?.host).toBe(`${tool}.toolforge.example`);
    expect(await logText(first)).toContain(`===> LIVE: release ${first.id} serves ${tool}`);

    const second = await newRelease();
    await deployer().deploy(second.id, new AbortController().signal);
    expect(await store.getRelease(second.id)).toMatchObject({ status: "live" });
    expect(await store.getRelease(first.id)).toMatchObject({ status: "superseded" });
    expect(await webImage()).toBe(`${REGISTRY}@${second.image_digest}`);
  }, 120_000);

  it("fails a stuck rollout with the new pod's reasons and events; the previous release stays live", async () => {
    const live = (await store.getRoute(tool))?.release_id;
    expect(live).toBeDefined();
    const withCron = parseComponentsConfig(
      [
        "config_version: v1beta1",
        "components:",
        "  web:",
        "    run:",
        "      command: web",
        "      port: 8000",
        "      publish: /",
        "  nightly:",
        "    run:",
        "      command: python3 cleanup.py",
        "      schedule: '@daily'",
        "",
      ].join("\n"),
      "slipway.yaml",
    );
    const release = await newRelease({ config: withCron });
    cluster.script(ns, "web-", {
      waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" },
    });
    const before = new Set(
      (
        await cluster.api<{ items: { metadata: { name: string } }[] }>("GET", `/api/v1/namespaces/${ns}/pods`)
      ).items.map((p) => p.metadata.name),
    );
    // The kubelet's event about the new pod, posted as soon as the pod exists.
    const eventPosted = waitFor("the new revision's pod", async () => {
      const pods = await cluster.api<{ items: { metadata: { name: string } }[] }>(
        "GET",
        `/api/v1/namespaces/${ns}/pods`,
      );
      return pods.items.find((p) => p.metadata.name.startsWith("web-") && !before.has(p.metadata.name))
        ?.metadata.name;
    }).then((pod) => podEvent(ns, pod, "Failed", "Failed to pull image: manifest unknown"));
    await deployer({ rolloutTimeoutS: 4 }).deploy(release.id, new AbortController().signal);
    await eventPosted;

    const failed = await store.getRelease(release.id);
    expect(failed?.status).toBe("failed");
    expect(failed?.reason).toContain("not rolled out within 4 s");
    expect(failed?.reason).toContain("waiting: ImagePullBackOff");
    expect(failed?.reason).toContain("Failed to pull image: manifest unknown");
    expect((await store.getRoute(tool))?.release_id).toBe(live);
    expect(await store.getRelease(live!)).toMatchObject({ status: "live" });
    // The failed release's scheduled job was never applied.
    expect(await read(`/apis/batch/v1/namespaces/${ns}/cronjobs/nightly`)).toBeUndefined();
    const build = await store.getBuild(release.build_id);
    expect(build).toMatchObject({ status: "failure", phase: "deploy" });
    expect(build?.reason).toContain("deploy failed: Deployment");
    expect(await logText(release)).toContain("===> DEPLOY FAILED");
  }, 120_000);

  it("runs the release phase as a Job first; a failing one blocks the rollout", async () => {
    // The stuck rollout before left the Deployment on the failed release's image: roll a good one out.
    await deployer().deploy((await newRelease()).id, new AbortController().signal);
    const live = (await store.getRoute(tool))?.release_id;
    const liveImage = await webImage();
    const release = await newRelease({ processes: ["web", "release"] });
    const job = `release-${release.id}`;
    cluster.script(ns, job, { exitCode: 3, logs: ["migrating", "error: relation exists"] });
    const patchesBefore = (await sentTo(ns)).filter((r) => r.verb === "patch").length;
    await deployer().deploy(release.id, new AbortController().signal);

    const failed = await store.getRelease(release.id);
    expect(failed?.status).toBe("failed");
    expect(failed?.reason).toContain("release phase exited 3");
    expect(failed?.log_tail).toEqual(["migrating", "error: relation exists"]);
    // Nothing of the new release was applied: the web Deployment still runs the live image.
    expect(await webImage()).toBe(liveImage);
    const patches = (await sentTo(ns)).filter((r) => r.verb === "patch").slice(patchesBefore);
    expect(patches.some((r) => r.path.endsWith("/deployments/web"))).toBe(false);
    expect((await store.getRoute(tool))?.release_id).toBe(live);
    const jobObject = await read<{ spec: { template: { spec: { containers: { image: string }[] } } } }>(
      `/apis/batch/v1/namespaces/${ns}/jobs/${job}`,
    );
    expect(jobObject?.spec.template.spec.containers[0]?.image).toBe(`${REGISTRY}@${release.image_digest}`);
  }, 120_000);

  it("applies workers and CronJobs of the config with the webservice, and prunes a dropped component", async () => {
    const config = parseComponentsConfig(
      [
        "config_version: v1beta1",
        "components:",
        "  web:",
        "    component_type: continuous",
        "    run:",
        "      command: web",
        "      port: 8000",
        "      publish: /",
        "  bot:",
        "    run:",
        "      command: python3 bot.py",
        "  nightly:",
        "    run:",
        "      command: python3 cleanup.py",
        "      schedule: '@daily'",
        "  migrate:",
        "    component_type: one-off",
        "    run:",
        "      command: python3 migrate.py",
        "",
      ].join("\n"),
      "slipway.yaml",
    );
    const full = await newRelease({ config });
    const jobsStore = RedisJobsStore.create(client);
    const jobs = new JobService({ jobs: jobsStore, store, imageOf: imageByDigest, logger: memoryLogger() });
    const patchesBefore = (await sentTo(ns)).filter((r) => r.verb === "patch").length;
    await deployer({
      onLive: (release) =>
        jobs.syncRelease(release, { onCluster: ["continuous", "scheduled"] }).then(() => undefined),
    }).deploy(full.id, new AbortController().signal);
    expect(
      (await jobsStore.listJobs(tool)).map((j) => [j.name, j.type, j.release_id, j.runs_on ?? "slipway"]),
    ).toEqual([
      ["bot", "continuous", full.id, "cluster"],
      ["migrate", "one-off", full.id, "slipway"],
      ["nightly", "scheduled", full.id, "cluster"],
    ]);
    expect(await store.getRelease(full.id)).toMatchObject({ status: "live" });
    expect(await read(`/apis/batch/v1/namespaces/${ns}/cronjobs/nightly`)).toBeDefined();
    // The worker rolled out through the real Deployment controller before the release went live.
    expect(await read(`/apis/apps/v1/namespaces/${ns}/deployments/bot`)).toMatchObject({
      status: { availableReplicas: 1 },
    });
    expect(await read(`/api/v1/namespaces/${ns}/secrets/bot-env`)).toBeDefined();
    // A one-off runs on demand; applying its Job would run it at every deploy.
    const patches = (await sentTo(ns)).filter((r) => r.verb === "patch").slice(patchesBefore);
    expect(patches.some((r) => r.path.includes("/jobs/"))).toBe(false);

    const webOnly = parseComponentsConfig(
      [
        "config_version: v1beta1",
        "components:",
        "  web:",
        "    run:",
        "      command: web",
        "      port: 8000",
        "      publish: /",
        "",
      ].join("\n"),
      "slipway.yaml",
    );
    const next = await newRelease({ config: webOnly });
    await deployer().deploy(next.id, new AbortController().signal);
    expect(await store.getRelease(next.id)).toMatchObject({ status: "live" });
    expect(await read(`/apis/batch/v1/namespaces/${ns}/cronjobs/nightly`)).toBeUndefined();
    expect(await read(`/apis/apps/v1/namespaces/${ns}/deployments/bot`)).toBeUndefined();
    expect(await read(`/api/v1/namespaces/${ns}/secrets/bot-env`)).toBeUndefined();
    expect(await read(`/apis/apps/v1/namespaces/${ns}/deployments/web`)).toBeDefined();
  }, 120_000);

  it("applies the tool's registry-pull Secret before the release phase Job, and prune keeps it", async () => {
    const pull = () =>
      Promise.resolve({ registry: "harbor.example", username: "robot$tool-pd+slipway-pull", password: "pw" });
    const release = await newRelease({ processes: ["web", "release"] });
    const job = `release-${release.id}`;
    cluster.script(ns, job, { exitCode: 0, logs: ["migrated"] });
    await deployer({ pullCredentials: pull }).deploy(release.id, new AbortController().signal);
    const done = await store.getRelease(release.id);
    expect(done?.status, done?.reason).toBe("live");

    const writes = (await sentTo(ns))
      .filter((r) => r.verb === "patch" || r.verb === "create")
      .map((r) => r.path);
    const secretAt = writes.findIndex((p) => p.endsWith(`/namespaces/${ns}/secrets/registry-pull`));
    const jobAt = writes.findIndex((p) => p.endsWith(`/namespaces/${ns}/jobs/${job}`));
    expect(secretAt).toBeGreaterThanOrEqual(0);
    expect(secretAt).toBeLessThan(jobAt);
    const jobObject = await read<{ spec: { template: { spec: { imagePullSecrets?: { name: string }[] } } } }>(
      `/apis/batch/v1/namespaces/${ns}/jobs/${job}`,
    );
    expect(jobObject?.spec.template.spec.imagePullSecrets).toEqual([{ name: "registry-pull" }]);
    const secret = await read<{ type: string }>(`/api/v1/namespaces/${ns}/secrets/registry-pull`);
    expect(secret?.type).toBe("kubernetes.io/dockerconfigjson");
    expect(
      (await sentTo(ns)).some((r) => r.verb === "delete" && r.path.endsWith("/secrets/registry-pull")),
    ).toBe(false);
  }, 120_000);
});

describe.skipIf(assets.skip !== undefined)("jobs on a real API server", () => {
  const tool = "pj";
  const ns = `tool-${tool}`;
  const RUNNER = "slipway-jobs-parity";
  const DIGEST = `sha256:${"a".repeat(64)}`;
  const IMAGE = `registry.example:5000/tool-${tool}/web@${DIGEST}`;
  const RELEASE: Release = {
    id: "rel1",
    tool,
    component: "web",
    build_id: "b1",
    commit: COMMIT,
    image: `registry.example:5000/tool-${tool}/web:0123456`,
    image_digest: DIGEST,
    trigger: { kind: "api", ref: "refs/heads/main" },
    status: "live",
    created_at: new Date().toISOString(),
  };
  const releases = new Map<string, Release>([[RELEASE.id, RELEASE]]);
  const logger = memoryLogger();
  let client: Redis;
  let store: RedisJobsStore;
  let jobs: JobService;
  let runtime: KubernetesJobsRuntime;
  let runner: JobRunner;
  let jobsApi: JobsApi;
  /** The runner's clock for schedules; moved forward by the scheduled-job test. */
  let clockOffsetMs = 0;

  beforeAll(async () => {
    client = new Redis(redis.url, { maxRetriesPerRequest: 3 });
    store = RedisJobsStore.create(client);
    jobs = new JobService({
      jobs: store,
      store: {
        getRoute: (t) =>
          Promise.resolve(
            t === tool ? { tool, release_id: RELEASE.id, host: `web.${ns}.svc`, port: 8000 } : undefined,
          ),
        getRelease: (id) => Promise.resolve(releases.get(id)),
      },
      imageOf: () => IMAGE,
      logger,
    });
    const kc = cluster.kubeConfig("slipway");
    runtime = new KubernetesJobsRuntime(
      kc,
      new KubernetesApplier(kc, logger, { subject: SLIPWAY_TEST_SUBJECT }),
      {
        getRelease: (id) => Promise.resolve(releases.get(id)),
        listTools: () =>
          Promise.resolve([...new Set([...releases.values()].map((r) => r.tool))].map((name) => ({ name }))),
      },
      { runner: RUNNER, startTimeoutS: 5, pollMs: 100 },
      logger,
    );
    runner = new JobRunner({
      store,
      runtime,
      envFor: () => Promise.resolve({ API_KEY: "s3cr3t-value" }),
      logger,
      options: { ...DEFAULT_RUNNER_OPTIONS, tickMs: 100, memoryMb: 256, owner: "parity" },
      now: () => new Date(Date.now() + clockOffsetMs),
    });
    await runner.start();
    jobsApi = await startJobsApi(jobs, tool, logger);
  });

  afterAll(async () => {
    for (const j of (await store?.listJobs(tool)) ?? []) await store.deleteJob(tool, j.name);
    await runner?.close();
    await jobsApi?.close();
    client?.disconnect();
  });

  async function api<T>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${jobsApi.base}${route}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  type WaitAnswer = {
    final: boolean;
    exit_code: number | null;
    status: string;
    runs: { id: string; attempt: number; status: string; reason: string | null; lines: string[] }[];
  };
  /** What `slipway jobs run … --wait` polls. */
  const waitRun = (name: string, runId: string) =>
    waitFor(
      `run ${runId} of ${name} to end`,
      async () => {
        const r = await api<WaitAnswer>("GET", `/${name}/runs/${runId}?wait=10`);
        return r.body.final ? r.body : undefined;
      },
      60_000,
    );

  /** The job's Jobs, pods and Secrets the API server holds now. */
  async function objectsOf(job: string): Promise<{ jobs: number; pods: number; secrets: number }> {
    const selector = `?labelSelector=${encodeURIComponent(`slipway.dev/job=${job}`)}`;
    const count = async (p: string) =>
      (await cluster.api<{ items: unknown[] }>("GET", `${p}${selector}`)).items.length;
    return {
      jobs: await count(`/apis/batch/v1/namespaces/${ns}/jobs`),
      pods: await count(`/api/v1/namespaces/${ns}/pods`),
      secrets: await count(`/api/v1/namespaces/${ns}/secrets`),
    };
  }
  /** Waits until the API server holds none of the job's objects (the garbage collector removes pods). */
  const allGone = (job: string) =>
    waitFor(`${job}'s Job, pods and Secret to go`, async () => {
      const left = await objectsOf(job);
      return left.jobs + left.pods + left.secrets === 0 ? true : undefined;
    });
  /** The Jobs Slipway created for `job`, in order (their names). */
  const createdJobs = async (job: string) =>
    (await sentTo(ns))
      .filter((r) => r.verb === "patch" && /\/jobs\/[^/]+$/.test(r.path))
      .map((r) => r.path.split("/").at(-1)!)
      .filter((name) => name.startsWith(`${job}-`));

  it("runs a one-off job as a Job: --wait returns its output and exit code, the objects go, the log stays", async () => {
    cluster.script(ns, "hello-", { logs: ["hello from the cluster", "second line", "third"], exitCode: 3 });
    const created = await api<{ run_id: string }>("POST", "", {
      name: "hello",
      command: "echo hello; exit 3",
    });
    expect(created.status).toBe(201);
    const job = `hello-${created.body.run_id}`;
    // The Job as the runner applied it, read back from the API server while it exists.
    const applied = await waitFor("the run's Job", () => read(`/apis/batch/v1/namespaces/${ns}/jobs/${job}`));
    expect(applied).toMatchObject({
      metadata: {
        labels: {
          "app.kubernetes.io/managed-by": "slipway",
          "slipway.dev/tool": tool,
          "slipway.dev/job": "hello",
          "slipway.dev/run": created.body.run_id,
          "slipway.dev/runner": RUNNER,
        },
      },
      spec: {
        backoffLimit: 0,
        template: { spec: { restartPolicy: "Never", automountServiceAccountToken: false } },
      },
    });
    expect(JSON.stringify(applied)).not.toContain("s3cr3t-value");

    const done = await waitRun("hello", created.body.run_id);
    expect(done).toMatchObject({ exit_code: 3, status: "failed" });
    expect(done.runs.map((r) => r.lines)).toEqual([["hello from the cluster", "second line", "third"]]);
    expect(JSON.stringify(logger.entries)).not.toContain("s3cr3t-value");
    // Job, pod (by the garbage collector, Background propagation) and Secret go; the output stays.
    await allGone("hello");
    const deletes = (await sentTo(ns)).filter((r) => r.verb === "delete" && r.path.endsWith(`/jobs/${job}`));
    expect(deletes.at(-1)?.code).toBe(200);
    const logs = await api<{ runs: { id: string; lines: string[] }[] }>("GET", "/hello/logs");
    expect(logs.body.runs).toEqual([
      expect.objectContaining({
        id: created.body.run_id,
        lines: ["hello from the cluster", "second line", "third"],
      }),
    ]);
  }, 90_000);

  it("records a failing job's exit code and retries it as new Jobs, each attempt with its own log", async () => {
    cluster.script(ns, "flaky-", { logs: ["attempt"], exitCode: 2 });
    const created = await api<{ run_id: string }>("POST", "", {
      name: "flaky",
      command: "./flaky",
      retry: 2,
    });
    const done = await waitRun("flaky", created.body.run_id);
    expect(done.runs.map((r) => [r.attempt, r.status, r.lines])).toEqual([
      [1, "failed", ["attempt"]],
      [2, "failed", ["attempt"]],
      [3, "failed", ["attempt"]],
    ]);
    expect(done.exit_code).toBe(2);
    expect(new Set(await createdJobs("flaky")).size).toBe(3);
    await allGone("flaky");
  }, 90_000);

  it("fires a scheduled job's run as a Job", async () => {
    cluster.script(ns, "tick-", { logs: ["tick ran"] });
    const created = await api("POST", "", { name: "tick", command: "./tick", schedule: "* * * * *" });
    expect(created.status).toBe(201);
    const next = await waitFor("the next run to be planned", async () => {
      const show = await api<{ status: { next_run_at: string | null } }>("GET", "/tick");
      return show.body.status.next_run_at ?? undefined;
    });
    // That minute comes: the runner's clock moves on, not the wall clock.
    clockOffsetMs = new Date(next).getTime() - Date.now() + 1000;
    const run = await waitFor("the scheduled run to end", async () => {
      const show = await api<{ runs: { id: string; status: string; trigger: string }[] }>("GET", "/tick");
      return show.body.runs.find((r) => r.trigger === "schedule" && r.status !== "running");
    });
    expect(run.status).toBe("succeeded");
    expect(await createdJobs("tick")).toContain(`tick-${run.id}`);
    const logs = await api<{ runs: { lines: string[] }[] }>("GET", `/tick/logs?run=${run.id}`);
    expect(logs.body.runs[0]?.lines).toEqual(["tick ran"]);
    await api("DELETE", "/tick");
  }, 90_000);

  it("deletes the Job and its pod when a running job is deleted or times out (exit code 137)", async () => {
    cluster.script(ns, "bot-", { logs: ["bot up"], running: true });
    await api("POST", "", { name: "bot", command: "worker", continuous: true });
    await waitFor("the bot's pod to run", async () =>
      (await objectsOf("bot")).pods === 1 ? true : undefined,
    );
    expect((await api("DELETE", "/bot")).status).toBe(200);
    await allGone("bot");

    cluster.script(ns, "slow-", { logs: ["start"], running: true });
    const slow = await api<{ run_id: string }>("POST", "", {
      name: "slow",
      command: "sleep 600",
      timeout: 2,
    });
    const done = await waitRun("slow", slow.body.run_id);
    expect(done).toMatchObject({ status: "timeout", exit_code: 137 });
    expect(done.runs[0]!.lines).toEqual(["start"]);
    await allGone("slow");
  }, 90_000);

  it("keeps what a run printed when its Job and pod are deleted behind Slipway's back", async () => {
    cluster.script(ns, "gone-", { logs: ["working 1", "working 2"], running: true });
    const created = await api<{ run_id: string }>("POST", "", { name: "gone", command: "./work" });
    await waitFor("the run to print", async () => {
      const logs = await api<{ runs: { lines: string[] }[] }>("GET", "/gone/logs");
      return logs.body.runs[0]?.lines.length === 2 ? true : undefined;
    });
    // As `kubectl delete job` does: the garbage collector takes the pod.
    const deleted = await cluster.kubectlRun("admin", [
      "-n",
      ns,
      "delete",
      "job",
      `gone-${created.body.run_id}`,
    ]);
    expect(deleted.code, deleted.stderr).toBe(0);
    const done = await waitRun("gone", created.body.run_id);
    expect(done).toMatchObject({ exit_code: 137, status: "failed" });
    expect(done.runs[0]!.lines).toEqual([
      "working 1",
      "working 2",
      "slipway: the run's Job was deleted outside Slipway",
    ]);
  }, 90_000);

  it("ends a run whose image never pulls with the reason in its log", async () => {
    cluster.script(ns, "nopull-", {
      waiting: { reason: "ImagePullBackOff", message: `Back-off pulling image "${IMAGE}"` },
    });
    const created = await api<{ run_id: string }>("POST", "", { name: "nopull", command: "./x" });
    const pod = await podNamed(ns, "nopull-");
    await podEvent(ns, pod, "Failed", `Failed to pull image "${IMAGE}": not found`);
    const done = await waitRun("nopull", created.body.run_id);
    expect(done.status).toBe("failed");
    expect(done.exit_code).toBeNull();
    const text = done.runs[0]!.lines.join("\n");
    expect(text).toContain("ImagePullBackOff");
    expect(text).toContain(`Back-off pulling image "${IMAGE}"`);
    expect(text).toContain(`Failed to pull image "${IMAGE}"`);
    expect(done.runs[0]!.reason).toContain("did not start");
    await allGone("nopull");
  }, 90_000);

  it("removes only the Jobs and Secrets its own runner left behind", async () => {
    const labels = (owner: string) => ({
      "app.kubernetes.io/managed-by": "slipway",
      "slipway.dev/tool": tool,
      "slipway.dev/job": "old",
      "slipway.dev/runner": owner,
    });
    const job = (name: string, owner: string) => ({
      metadata: { name, labels: labels(owner) },
      spec: {
        suspend: true,
        template: { spec: { restartPolicy: "Never", containers: [{ name: "c", image: IMAGE }] } },
      },
    });
    await cluster.api("POST", `/apis/batch/v1/namespaces/${ns}/jobs`, job("old-mine", RUNNER));
    await cluster.api("POST", `/api/v1/namespaces/${ns}/secrets`, {
      metadata: { name: "old-mine-env", labels: labels(RUNNER) },
    });
    await cluster.api("POST", `/apis/batch/v1/namespaces/${ns}/jobs`, job("old-other", "someone-else"));
    expect(await runtime.removeLeftovers()).toBe(1);
    await waitFor("the leftover Job to go", async () =>
      (await read(`/apis/batch/v1/namespaces/${ns}/jobs/old-mine`)) ? undefined : true,
    );
    expect(await read(`/api/v1/namespaces/${ns}/secrets/old-mine-env`)).toBeUndefined();
    expect(await read(`/apis/batch/v1/namespaces/${ns}/jobs/old-other`)).toBeDefined();
  }, 60_000);

  it("leaves a config's workers and CronJobs to the cluster and runs its one-off components on demand", async () => {
    const config = parseComponentsConfig(
      [
        "components:",
        "  web: { run: { command: web, port: 8000 } }",
        "  queue-worker: { run: { command: 'sleep 600' } }",
        "  cleanup: { run: { command: 'echo cleanup', schedule: '@hourly' } }",
        "  migrate: { component_type: one-off, run: { command: './manage.py migrate', timeout: 60 } }",
        "",
      ].join("\n"),
      "slipway.yaml",
    );
    const rel2: Release = { ...RELEASE, id: "rel2", config };
    releases.set(rel2.id, rel2);
    cluster.script(ns, "queue-worker-", { running: true });
    // A continuous config job left from the local profile: the runner starts a Job for it.
    await jobs.syncRelease(rel2);
    await waitFor("the runner's Job for the worker", async () =>
      (await objectsOf("queue-worker")).jobs === 1 ? true : undefined,
    );
    // What the cluster profile's deployer does once the release is live.
    const synced = await jobs.syncRelease(rel2, { onCluster: ["continuous", "scheduled"] });
    expect(synced.updated.sort()).toEqual(["cleanup", "queue-worker"]);
    const list = await api<{ name: string; type: string; source: string; runs_on: string }[]>("GET", "");
    expect(list.body.filter((j) => j.source === "config").map((j) => [j.name, j.type, j.runs_on])).toEqual([
      ["cleanup", "scheduled", "cluster"],
      ["migrate", "one-off", "slipway"],
      ["queue-worker", "continuous", "cluster"],
    ]);
    await allGone("queue-worker");
    expect((await api("DELETE", "/queue-worker")).status).toBe(409);

    cluster.script(ns, "migrate-", { logs: ["Applying migrations... OK"], exitCode: 0 });
    const run = await api<{ run_id: string }>("POST", "", { name: "migrate" });
    expect(run.status).toBe(201);
    const migrateJob = await waitFor("the migrate Job", () =>
      read<{ metadata: { labels: Record<string, string> } }>(
        `/apis/batch/v1/namespaces/${ns}/jobs/migrate-${run.body.run_id}`,
      ),
    );
    expect(migrateJob.metadata.labels).toMatchObject({ "slipway.dev/release": "rel2" });
    const done = await waitRun("migrate", run.body.run_id);
    expect(done).toMatchObject({ status: "succeeded", exit_code: 0 });
    expect(done.runs[0]!.lines).toEqual(["Applying migrations... OK"]);
    await api("DELETE", "/migrate");
    await store.deleteJob(tool, "queue-worker");
    await store.deleteJob(tool, "cleanup");
  }, 90_000);
});

describe.skipIf(assets.skip !== undefined)("webservice output and status on a real API server", () => {
  const tool = "pws";
  const ns = `tool-${tool}`;
  const RELEASE: Release = {
    id: "rel7",
    tool,
    component: "web",
    build_id: "b7",
    commit: COMMIT,
    image: `registry.example:5000/tool-${tool}/web:0123456`,
    image_digest: `sha256:${"b".repeat(64)}`,
    trigger: { kind: "api", ref: "refs/heads/main" },
    status: "live",
    created_at: new Date().toISOString(),
  };
  const route: Route = { tool, release_id: RELEASE.id, host: `web.${ns}.svc`, port: 8000 };
  let client: Redis;
  let logs: RedisProcessLogs;
  const runtime = () =>
    new KubernetesRuntime(
      applierFor(),
      {
        getRelease: () => Promise.resolve(RELEASE),
        listTools: () => Promise.resolve([{ name: RELEASE.tool }]),
      },
      { render: OPTIONS, rolloutTimeoutS: 60, pollMs: 100 },
      memoryLogger(),
    );

  beforeAll(async () => {
    client = new Redis(redis.url, { maxRetriesPerRequest: 3 });
    logs = new RedisProcessLogs(client);
    cluster.script(ns, "web-", { logs: ["GET / 200", "GET /health 200"], running: true });
    await runtime().start({
      tool,
      process: "web",
      releaseId: RELEASE.id,
      image: `registry.example:5000/tool-${tool}/web@${RELEASE.image_digest}`,
      env: {},
      port: 8000,
      memoryMb: 256,
    });
  }, 90_000);
  afterAll(() => client?.disconnect());

  it("keeps the live release's web pods' output, readable after the pods are gone", async () => {
    const first = await podNamed(ns, "web-", "Running");
    // Whatever web pod comes next prints "replica two"; the first one keeps its own lines.
    cluster.script(ns, "web-", { logs: ["replica two"], running: true });
    cluster.script(ns, first, { logs: ["GET / 200", "GET /health 200"], running: true });
    // A pod of an older release in the namespace: not this release's output.
    cluster.script(ns, "web-old99-", { logs: ["old release line"], running: true });
    await cluster.api("POST", `/api/v1/namespaces/${ns}/pods`, {
      metadata: {
        name: "web-old99-bbbbb",
        labels: {
          "app.kubernetes.io/component": "webservice",
          "app.kubernetes.io/managed-by": "slipway",
          "slipway.dev/component": "web",
          "slipway.dev/release": "rel6",
          "slipway.dev/tool": tool,
        },
      },
      // The namespace enforces the "restricted" Pod Security Standard, as for Slipway's own pods.
      spec: {
        securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
        containers: [
          {
            name: "web",
            image: RELEASE.image,
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
          },
        ],
      },
    });
    const follower = new KubernetesWebLogFollower(cluster.kubeConfig("slipway"), {
      store: {
        listTools: () => Promise.resolve([{ name: tool }] as never),
        getRoute: () => Promise.resolve(route),
      },
      logs,
      logger: memoryLogger(),
      options: { pollMs: 100 },
    });
    follower.start();
    try {
      const kept = () => logs.read(tool, RELEASE.id, 100).then((l) => l.map((x) => x.line));
      await waitFor("the first lines to be kept", async () =>
        (await kept()).length >= 2 ? true : undefined,
      );
      // Lines printed while the pod runs arrive too, each once.
      cluster.script(ns, first, { logs: ["GET / 200", "GET /health 200", "POST /edit 302"], running: true });
      await waitFor("the new line to be kept", async () => ((await kept()).length >= 3 ? true : undefined));
      // The pod goes; its ReplicaSet brings up another replica of the same release.
      await cluster.api("DELETE", `/api/v1/namespaces/${ns}/pods/${first}`);
      await waitFor("the new pod's line", async () => ((await kept()).length >= 4 ? true : undefined));
      expect(await kept()).toEqual(["GET / 200", "GET /health 200", "POST /edit 302", "replica two"]);
      expect(await logs.releases(tool)).toEqual([RELEASE.id]);
    } finally {
      await follower.close();
    }
  }, 90_000);

  it("reports how many web pods of the live release are ready", async () => {
    const service = new WebserviceService({
      store: { getRoute: () => Promise.resolve(route), getRelease: () => Promise.resolve(RELEASE) } as never,
      runtime: runtime(),
      replicas: (t, r) => runtime().replicas(t, r),
      logs,
      marks: logs,
      restart: () => Promise.resolve(null),
    });
    const deployment = `/apis/apps/v1/namespaces/${ns}/deployments/web`;
    // Two more replicas whose containers never become ready.
    cluster.script(ns, "web-", { neverReady: true });
    await cluster.api("PATCH", deployment, { spec: { replicas: 3 } }, "application/merge-patch+json");
    const status = await waitFor("the controller to count 3 replicas", async () => {
      const s = await service.status(tool);
      return s.replicas_wanted === 3 &&
        (await read<{ status: { replicas?: number } }>(deployment))?.status.replicas === 3
        ? s
        : undefined;
    });
    expect(status).toMatchObject({
      state: "running",
      release_id: RELEASE.id,
      replicas_ready: 1,
      replicas_wanted: 3,
    });

    // The ready pod goes; its replacement never becomes ready.
    const ready = await waitFor("the ready pod", async () => {
      const pods = await cluster.api<{
        items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[];
      }>(
        "GET",
        `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent("slipway.dev/release=rel7")}`,
      );
      return pods.items.find((p) =>
        p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      )?.metadata.name;
    });
    await cluster.api("DELETE", `/api/v1/namespaces/${ns}/pods/${ready}`);
    const missing = await waitFor("no replica to be ready", async () => {
      const s = await service.status(tool);
      return s.replicas_ready === 0 ? s : undefined;
    });
    expect(missing).toMatchObject({ state: "missing", replicas_ready: 0, replicas_wanted: 3 });
  }, 90_000);
});

describe.skipIf(assets.skip !== undefined)("a config's workers and CronJobs on a real API server", () => {
  const tool = "pcj";
  const ns = `tool-${tool}`;
  const DIGEST = `sha256:${"c".repeat(64)}`;
  const IMAGE = `registry.example:5000/tool-${tool}/web@${DIGEST}`;
  const config = parseComponentsConfig(
    [
      "components:",
      "  web: { run: { command: web, port: 8000 } }",
      "  queue-worker: { run: { command: 'python3 worker.py' } }",
      "  cleanup: { run: { command: 'python3 cleanup.py', schedule: '* * * * *' } }",
      "",
    ].join("\n"),
    "slipway.yaml",
  );
  const RELEASE: Release = {
    id: "rel1",
    tool,
    component: "web",
    build_id: "b1",
    commit: COMMIT,
    image: `registry.example:5000/tool-${tool}/web:0123456`,
    image_digest: DIGEST,
    trigger: { kind: "api", ref: "refs/heads/main" },
    status: "live",
    created_at: new Date().toISOString(),
    config,
  };
  const route = { tool, release_id: RELEASE.id, host: `web.${ns}.svc`, port: 8000 };
  const logger = memoryLogger();
  let client: Redis;
  let store: RedisJobsStore;
  let jobs: JobService;
  let runner: JobRunner;
  let follower: KubernetesConfigJobFollower;
  let jobsApi: JobsApi;
  /** The runner's clock runs 30 s ahead at every look, so the `* * * * *` schedule comes due at once. */
  let clockOffsetMs = 0;

  beforeAll(async () => {
    client = new Redis(redis.url, { maxRetriesPerRequest: 3 });
    store = RedisJobsStore.create(client);
    const state = {
      listTools: () => Promise.resolve([{ name: tool }] as never),
      getRoute: (t: string) => Promise.resolve(t === tool ? route : undefined),
      getRelease: (id: string) => Promise.resolve(id === RELEASE.id ? RELEASE : undefined),
    };
    jobs = new JobService({ jobs: store, store: state, imageOf: () => IMAGE, logger });
    const kc = cluster.kubeConfig("slipway");
    runner = new JobRunner({
      store,
      runtime: new KubernetesJobsRuntime(
        kc,
        new KubernetesApplier(kc, logger, { subject: SLIPWAY_TEST_SUBJECT }),
        state,
        { runner: "slipway-config-jobs-parity", startTimeoutS: 5, pollMs: 100 },
        logger,
      ),
      envFor: () => Promise.resolve({}),
      logger,
      options: { ...DEFAULT_RUNNER_OPTIONS, tickMs: 100, memoryMb: 256, owner: "parity-config" },
      now: () => new Date(Date.now() + (clockOffsetMs += 30_000)),
    });
    await runner.start();
    follower = new KubernetesConfigJobFollower(kc, {
      store: state,
      jobs: store,
      logger,
      options: { pollMs: 100 },
    });
    jobsApi = await startJobsApi(jobs, tool, logger);
  });

  afterAll(async () => {
    await follower?.close();
    await runner?.close();
    for (const j of (await store?.listJobs(tool)) ?? []) await store.deleteJob(tool, j.name);
    await jobsApi?.close();
    client?.disconnect();
  });

  async function api<T>(method: string, path: string): Promise<{ status: number; body: T }> {
    const res = await fetch(`${jobsApi.base}${path}`, { method });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  }
  type JobShow = {
    status: { state: string; last_exit_code: number | null; last_run_id: string | null };
    runs: {
      id: string;
      status: string;
      exit_code: number | null;
      trigger: string;
      finished_at: string | null;
    }[];
  };

  it("lists them as the cluster's jobs and keeps each pod as a run, with exit code and output past the pod", async () => {
    // The release's worker and CronJob, applied as the deployer does. The CronJob is suspended so the
    // real controller fires nothing on its own during the test; its run is made on demand below.
    const base = { tool, image: IMAGE, releaseId: RELEASE.id, commit: COMMIT };
    const objects = renderAll(
      {
        tool,
        workloads: [
          {
            ...base,
            kind: "continuous-worker",
            component: "queue-worker",
            command: { shell: "python3 worker.py" },
          },
          {
            ...base,
            kind: "scheduled",
            component: "cleanup",
            command: { shell: "python3 cleanup.py" },
            schedule: "* * * * *",
          },
        ],
      },
      OPTIONS,
    ).map((o) =>
      o.kind === "CronJob" ? { ...o, spec: { ...(o as { spec?: object }).spec, suspend: true } } : o,
    );
    cluster.script(ns, "queue-worker-", { logs: ["worker up", "took job 1"], running: true });
    cluster.script(ns, "cleanup-manual-", { logs: ["cleaning 12 rows"], running: true });
    await applierFor().apply(tool, objects);
    await jobs.syncRelease(RELEASE, { onCluster: ["continuous", "scheduled"] });
    const list = await api<{ name: string; type: string; runs_on: string }[]>("GET", "");
    expect(list.body.map((j) => [j.name, j.type, j.runs_on])).toEqual([
      ["cleanup", "scheduled", "cluster"],
      ["queue-worker", "continuous", "cluster"],
    ]);
    const worker = await podNamed(ns, "queue-worker-", "Running");
    const made = await cluster.kubectlRun("admin", [
      "-n",
      ns,
      "create",
      "job",
      "--from=cronjob/cleanup",
      "cleanup-manual",
    ]);
    expect(made.code, made.stderr).toBe(0);
    const cron = await podNamed(ns, "cleanup-manual-", "Running");
    follower.start();

    const runLines = async (job: string, run: string) =>
      (await jobs.logs(tool, job, run)).flatMap((l) => l.lines);
    await waitFor("the CronJob pod's first line", async () =>
      (await runLines("cleanup", cron).catch(() => [])).length ? true : undefined,
    );
    // It prints one more line and exits 3, as the kubelet reports it.
    cluster.script(ns, cron, { logs: ["cleaning 12 rows", "could not reach the database"], running: true });
    const at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    await cluster.api(
      "PATCH",
      `/api/v1/namespaces/${ns}/pods/${cron}/status`,
      {
        status: {
          phase: "Failed",
          containerStatuses: [
            {
              name: "cleanup",
              image: IMAGE,
              imageID: "",
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode: 3, reason: "Error", startedAt: at, finishedAt: at } },
            },
          ],
        },
      },
      "application/strategic-merge-patch+json",
    );
    const cleanup = await waitFor("the CronJob run to end", async () => {
      const show = await api<JobShow>("GET", "/cleanup");
      return show.body.runs[0]?.finished_at && show.body.status.state !== "running" ? show.body : undefined;
    });
    expect(cleanup.runs).toMatchObject([{ id: cron, status: "failed", exit_code: 3, trigger: "schedule" }]);
    expect(cleanup.status).toMatchObject({ state: "waiting", last_exit_code: 3, last_run_id: cron });
    // The CronJob's history limit takes the Job and its pod; the output stays.
    await cluster.kubectlRun("admin", ["-n", ns, "delete", "job", "cleanup-manual"]);
    await waitFor("the CronJob's pod to go", async () =>
      (await read(`/api/v1/namespaces/${ns}/pods/${cron}`)) ? undefined : true,
    );
    const logs = await api<{ runs: { id: string; lines: string[] }[] }>("GET", "/cleanup/logs");
    expect(logs.body.runs).toEqual([
      expect.objectContaining({ id: cron, lines: ["cleaning 12 rows", "could not reach the database"] }),
    ]);

    // The worker's pod is a running run; once it is deleted, its run ends and its log stays.
    await waitFor("the worker's lines", async () =>
      (await runLines("queue-worker", worker).catch(() => [])).length >= 2 ? true : undefined,
    );
    const running = await api<JobShow>("GET", "/queue-worker");
    expect(running.body.status.state).toBe("running");
    expect(running.body.runs).toMatchObject([{ id: worker, status: "running" }]);
    await cluster.api("DELETE", `/api/v1/namespaces/${ns}/pods/${worker}`);
    await waitFor("the worker's run to end", async () => {
      const show = await api<JobShow>("GET", "/queue-worker");
      return show.body.runs.find((r) => r.id === worker)?.status === "stopped" ? true : undefined;
    });
    expect(await runLines("queue-worker", worker)).toEqual(["worker up", "took job 1"]);

    // Nothing ran twice: the runner (its clock well past the schedule's minutes) made no Job.
    expect(clockOffsetMs).toBeGreaterThan(120_000);
    expect((await sentTo(ns)).some((r) => r.verb === "patch" && r.path.includes("/jobs/"))).toBe(false);
    const jobsThere = await cluster.api<{ items: unknown[] }>("GET", `/apis/batch/v1/namespaces/${ns}/jobs`);
    expect(jobsThere.items).toEqual([]);
    expect((await store.listRuns(tool, "cleanup")).map((r) => r.id)).toEqual([cron]);

    // Slipway does not delete, restart or fire what the cluster runs; the answer says what does.
    const refused = await api<{ error: { message: string } }>("DELETE", "/queue-worker");
    expect(refused.status).toBe(409);
    expect(JSON.stringify(refused.body)).toContain("remove the component from slipway.yaml");
    expect((await api("POST", "/queue-worker/restart")).status).toBe(409);
  }, 120_000);
});
