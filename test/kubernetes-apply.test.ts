import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesRuntime } from "../services/adapters/kubernetes/runtime.js";
import type { Release } from "../services/domain/releases/release.js";
import {
  renderAll,
  renderEnvSecret,
  type KubernetesObject,
  type ToolWorkload,
} from "../services/domain/kubernetes/index.js";
import { PipelineError, SlipwayError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import { startKubeDouble, type KubeDouble, type KubeObject, kubeConfigFor } from "./helpers/kube-double.js";

// The adapter against an HTTP double of the Kubernetes API (no cluster runs here): real client-node,
// real HTTP, the API's response shapes. What the double cannot show (admission, controllers, real
// scheduling) is listed in docs/kubernetes.md.
// Every test here except the one marked "double only" also runs against a real kube-apiserver in
// test/kubernetes-parity.test.ts (issue 14); the double stays so these behaviours are checked where
// the Kubernetes binaries are missing (the real-server tests skip there).

const TOOL = "demo";
const NS = "tool-demo";
const IMAGE = `registry.example/tool-demo/web@sha256:${"a".repeat(64)}`;
const OPTIONS = { domain: "toolforge.example", ingressClassName: "nginx" };

function workloads(releaseId = "r1"): ToolWorkload[] {
  const base = { tool: TOOL, image: IMAGE, releaseId, commit: "0123456789abcdef0123456789abcdef01234567" };
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

function rendered(ws = workloads()): KubernetesObject[] {
  return [
    ...renderAll({ tool: TOOL, workloads: ws }, OPTIONS),
    renderEnvSecret(TOOL, "web", { API_KEY: "s3cr3t" }),
  ];
}

const PLURAL: Record<string, string> = {
  Namespace: "namespaces",
  ResourceQuota: "resourcequotas",
  LimitRange: "limitranges",
  NetworkPolicy: "networkpolicies",
  Secret: "secrets",
  Service: "services",
  Deployment: "deployments",
  Ingress: "ingresses",
  CronJob: "cronjobs",
};
const GROUP: Record<string, string> = {
  Deployment: "/apis/apps/v1",
  Ingress: "/apis/networking.k8s.io/v1",
  NetworkPolicy: "/apis/networking.k8s.io/v1",
  CronJob: "/apis/batch/v1",
};

function pathOf(o: { kind: string; metadata: { name: string; namespace?: string } }): string {
  const root = GROUP[o.kind] ?? "/api/v1";
  return o.kind === "Namespace"
    ? `${root}/namespaces/${o.metadata.name}`
    : `${root}/namespaces/${o.metadata.namespace}/${PLURAL[o.kind]}/${o.metadata.name}`;
}

function slipwayLabels(tool: string, component: string) {
  return {
    "app.kubernetes.io/managed-by": "slipway",
    "slipway.dev/tool": tool,
    "slipway.dev/component": component,
  };
}

let kube: KubeDouble;
let applier: KubernetesApplier;
let logger: ReturnType<typeof memoryLogger>;

beforeAll(async () => {
  kube = await startKubeDouble();
});
afterAll(async () => {
  await kube.close();
});
beforeEach(() => {
  logger = memoryLogger();
  applier = new KubernetesApplier(kubeConfigFor(kube.url), logger);
});
afterEach(() => {
  kube.reset();
});

describe("KubernetesApplier.apply", () => {
  it("server-side applies every object as field manager slipway, namespace first and workloads after what they use", async () => {
    const objects = rendered();
    const result = await applier.apply(TOOL, objects);

    const patches = kube.requests.filter((r) => r.method === "PATCH");
    expect(patches.map((r) => r.path)).toEqual([
      "/api/v1/namespaces/tool-demo",
      "/api/v1/namespaces/tool-demo/resourcequotas/tool-quota",
      "/api/v1/namespaces/tool-demo/limitranges/tool-limits",
      "/apis/networking.k8s.io/v1/namespaces/tool-demo/networkpolicies/tool-isolation",
      "/api/v1/namespaces/tool-demo/secrets/web-env",
      "/api/v1/namespaces/tool-demo/services/web",
      "/apis/apps/v1/namespaces/tool-demo/deployments/bot",
      "/apis/apps/v1/namespaces/tool-demo/deployments/web",
      "/apis/networking.k8s.io/v1/namespaces/tool-demo/ingresses/web",
      "/apis/batch/v1/namespaces/tool-demo/cronjobs/nightly",
    ]);
    for (const p of patches) {
      expect(p.contentType).toBe("application/apply-patch+yaml");
      expect(p.query.fieldManager).toBe("slipway");
      expect(p.authorization).toBe("Bearer double-token");
    }
    // The server gets each object exactly as rendered: nothing renamed or dropped by client-node's
    // typed models (LimitRange `default` is the one they would lose).
    for (const o of objects) {
      expect(patches.find((p) => p.path === pathOf(o))?.body, `${o.kind}/${o.metadata.name}`).toEqual(o);
    }
    const limits = patches.find((p) => p.path.endsWith("/limitranges/tool-limits"))?.body as {
      spec: { limits: { default?: unknown }[] };
    };
    expect(limits.spec.limits[0]?.default).toEqual({ cpu: "100m", memory: "512Mi" });

    expect(result.applied.map((a) => `${a.kind}/${a.name}`)).toContain("Deployment/web");
    const web = result.applied.find((a) => a.kind === "Deployment" && a.name === "web");
    expect(web?.generation).toBe(1);
    expect(web?.resourceVersion).toMatch(/^\d+$/);
    expect(kube.get("Deployment", NS, "web")?.metadata.managedFields).toEqual([
      expect.objectContaining({ manager: "slipway", operation: "Apply" }),
    ]);
    expect(result.pruned).toEqual([]);
  });

  it("prunes only the tool's slipway-managed objects that are no longer rendered", async () => {
    await applier.apply(TOOL, rendered());
    // A component removed from the config, something made by hand in the namespace, another
    // tool's object, and a one-off Job of an earlier release.
    kube.seed({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "old-bot", namespace: NS, labels: slipwayLabels(TOOL, "old-bot") },
    });
    kube.seed({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "old-bot", namespace: NS, labels: slipwayLabels(TOOL, "old-bot") },
    });
    kube.seed({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "by-hand", namespace: NS, labels: { app: "by-hand" } },
    });
    kube.seed({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: "tool-other", labels: slipwayLabels("other", "web") },
    });
    kube.seed({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "migrate-r0", namespace: NS, labels: slipwayLabels(TOOL, "migrate") },
    });
    kube.requests.length = 0;

    // The worker "bot" is gone from the config now.
    const result = await applier.apply(TOOL, rendered(workloads().filter((w) => w.component !== "bot")), {
      prune: true,
    });

    const deletes = kube.requests.filter((r) => r.method === "DELETE").map((r) => r.path);
    expect(deletes.sort()).toEqual([
      "/api/v1/namespaces/tool-demo/services/old-bot",
      "/apis/apps/v1/namespaces/tool-demo/deployments/bot",
      "/apis/apps/v1/namespaces/tool-demo/deployments/old-bot",
    ]);
    expect(result.pruned.map((p) => `${p.kind}/${p.name}`).sort()).toEqual([
      "Deployment/bot",
      "Deployment/old-bot",
      "Service/old-bot",
    ]);
    expect(kube.get("Deployment", NS, "by-hand")).toBeDefined();
    expect(kube.get("Deployment", "tool-other", "web")).toBeDefined();
    expect(kube.get("Job", NS, "migrate-r0")).toBeDefined();
    expect(kube.get("Deployment", NS, "web")).toBeDefined();
    expect(kube.get("Secret", NS, "web-env")).toBeDefined();
    // Lists asked the API server for the tool's managed objects only.
    const lists = kube.requests.filter((r) => r.method === "GET" && r.query.labelSelector);
    expect(lists.length).toBeGreaterThan(0);
    for (const l of lists)
      expect(l.query.labelSelector).toBe("app.kubernetes.io/managed-by=slipway,slipway.dev/tool=demo");
  });

  it("turns a 422 from the API server into an error naming the object and the field, and stops there", async () => {
    kube.failApply("Deployment", "web", {
      kind: "invalid",
      field: "spec.template.spec.containers[0].resources.limits.memory",
      message: 'Invalid value: "512Mi": must be less than or equal to memory limit of 256Mi',
    });
    const error = await applier.apply(TOOL, rendered()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PipelineError);
    const message = (error as Error).message;
    expect(message).toContain("Deployment tool-demo/web");
    expect(message).toContain("422 Invalid");
    expect(message).toContain("spec.template.spec.containers[0].resources.limits.memory");
    expect(message).toContain("must be less than or equal to memory limit of 256Mi");
    expect(message).not.toContain("Headers");
    // Nothing that depends on the failed Deployment was applied after it.
    const patched = kube.requests.filter((r) => r.method === "PATCH").map((r) => r.path);
    expect(patched.at(-1)).toBe("/apis/apps/v1/namespaces/tool-demo/deployments/web");
  });

  it("takes over fields of an earlier Slipway but refuses to undo someone's kubectl edit", async () => {
    kube.failApply("Deployment", "web", {
      kind: "conflict",
      manager: "before-first-apply",
      field: ".spec.replicas",
    });
    await applier.apply(TOOL, rendered());
    const webApplies = kube.requests.filter(
      (r) => r.method === "PATCH" && r.path.endsWith("/deployments/web"),
    );
    expect(webApplies.map((r) => r.query.force)).toEqual(["false", "true"]);

    kube.requests.length = 0;
    kube.failApply("Deployment", "web", {
      kind: "conflict",
      manager: "kubectl-edit",
      field: ".spec.replicas",
    });
    const error = await applier.apply(TOOL, rendered()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PipelineError);
    expect((error as Error).message).toMatch(
      /Deployment tool-demo\/web was changed outside Slipway: \.spec\.replicas \(conflict with "kubectl-edit"/,
    );
    expect(kube.requests.filter((r) => r.method === "PATCH" && r.query.force === "true")).toEqual([]);
  });

  it("refuses objects outside the tool's namespace before sending anything", async () => {
    const foreign = renderAll({ tool: "other", workloads: [] }, OPTIONS);
    await expect(applier.apply(TOOL, [...rendered(), ...foreign])).rejects.toThrow(/is not in tool-demo/);
    expect(kube.requests.filter((r) => r.method === "PATCH")).toEqual([]);
  });
});

function progressing(reason: string, message = "") {
  return {
    type: "Progressing",
    status: reason === "ProgressDeadlineExceeded" ? "False" : "True",
    reason,
    message,
  };
}

/** The controller's objects for a rollout of `web` that needs revision 2: ReplicaSets, pods, events. */
function seedRollout(deployment: KubeObject, newPod: Record<string, unknown>) {
  const owner = [{ uid: deployment.metadata.uid!, kind: "Deployment", name: "web" }];
  const labels = { "slipway.dev/tool": TOOL, "slipway.dev/component": "web" };
  kube.seed({
    apiVersion: "apps/v1",
    kind: "ReplicaSet",
    metadata: {
      name: "web-old111",
      namespace: NS,
      labels: { ...labels, "pod-template-hash": "old111" },
      annotations: { "deployment.kubernetes.io/revision": "1" },
      ownerReferences: owner,
    },
  });
  kube.seed({
    apiVersion: "apps/v1",
    kind: "ReplicaSet",
    metadata: {
      name: "web-new222",
      namespace: NS,
      labels: { ...labels, "pod-template-hash": "new222" },
      annotations: { "deployment.kubernetes.io/revision": "2" },
      ownerReferences: owner,
    },
  });
  kube.seed({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web-old111-aaaaa",
      namespace: NS,
      labels: { ...labels, "pod-template-hash": "old111" },
    },
    status: {
      phase: "Running",
      containerStatuses: [
        { name: "web", ready: true, restartCount: 0, image: "x", imageID: "", state: { running: {} } },
      ],
    },
  });
  kube.seed({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web-new222-bbbbb",
      namespace: NS,
      labels: { ...labels, "pod-template-hash": "new222" },
    },
    status: newPod,
  });
  const event = (name: string, pod: string, type: string, reason: string, message: string, at: string) =>
    kube.seed({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace: NS },
      involvedObject: { kind: "Pod", name: pod, namespace: NS },
      type,
      reason,
      message,
      lastTimestamp: at,
      firstTimestamp: at,
      count: 1,
    });
  // Seeded out of order: the report must sort them, newest last.
  event("e3", "web-new222-bbbbb", "Warning", "Failed", "Error: ImagePullBackOff", "2026-12-02T02:00:30Z");
  event(
    "e1",
    "web-new222-bbbbb",
    "Normal",
    "Scheduled",
    "Successfully assigned tool-demo/web-new222-bbbbb",
    "2026-12-02T02:00:00Z",
  );
  event(
    "e2",
    "web-new222-bbbbb",
    "Warning",
    "Failed",
    'Failed to pull image "registry.example/tool-demo/web@sha256:aaaa": not found',
    "2026-12-02T02:00:10Z",
  );
  event(
    "e4",
    "web-old111-aaaaa",
    "Warning",
    "Unhealthy",
    "Readiness probe failed long ago",
    "2026-12-01T00:00:00Z",
  );
}

describe("KubernetesApplier.waitForRollout", () => {
  beforeEach(async () => {
    await applier.apply(TOOL, rendered());
  });

  it("returns once the Deployment reports every new replica available, after a few polls", async () => {
    kube.scriptRollout(NS, "web", [
      {
        replicas: 1,
        updatedReplicas: 0,
        availableReplicas: 1,
        conditions: [progressing("ReplicaSetUpdated")],
      },
      {
        replicas: 2,
        updatedReplicas: 1,
        availableReplicas: 1,
        conditions: [progressing("ReplicaSetUpdated")],
      },
      {
        replicas: 1,
        updatedReplicas: 1,
        availableReplicas: 0,
        conditions: [progressing("ReplicaSetUpdated")],
      },
      {
        replicas: 1,
        updatedReplicas: 1,
        availableReplicas: 1,
        readyReplicas: 1,
        conditions: [progressing("NewReplicaSetAvailable")],
      },
    ]);
    const deployment = await applier.waitForRollout(NS, "web", { timeoutS: 30, pollMs: 10 });
    expect(deployment.status?.availableReplicas).toBe(1);
    // Double only: how many polls a real controller needs depends on timing.
    const reads = kube.requests.filter(
      (r) => r.method === "GET" && r.path === "/apis/apps/v1/namespaces/tool-demo/deployments/web/status",
    );
    expect(reads).toHaveLength(4);
  });

  // Double only: a real Deployment controller catches up with a new generation within milliseconds, so
  // a test cannot hold its status on the previous spec while the adapter polls.
  it("does not count a status the controller computed for the previous spec", async () => {
    kube.scriptRollout(NS, "web", [
      { observedGeneration: 0, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
      { replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
    ]);
    await applier.waitForRollout(NS, "web", { timeoutS: 30, pollMs: 10 });
    expect(kube.requests.filter((r) => r.path.endsWith("/deployments/web/status"))).toHaveLength(2);
  });

  it("explains a rollout stuck on ImagePullBackOff from the new pod's status and events", async () => {
    seedRollout(kube.get("Deployment", NS, "web")!, {
      phase: "Pending",
      containerStatuses: [
        {
          name: "web",
          ready: false,
          restartCount: 0,
          image: IMAGE,
          imageID: "",
          state: { waiting: { reason: "ImagePullBackOff", message: `Back-off pulling image "${IMAGE}"` } },
        },
      ],
    });
    kube.scriptRollout(NS, "web", [
      {
        replicas: 2,
        updatedReplicas: 1,
        availableReplicas: 1,
        unavailableReplicas: 1,
        conditions: [
          progressing("ProgressDeadlineExceeded", 'ReplicaSet "web-new222" has timed out progressing.'),
        ],
      },
    ]);
    const error = await applier.waitForRollout(NS, "web", { timeoutS: 600, pollMs: 10 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PipelineError);
    expect((error as SlipwayError).code).toBe("deploy_failed");
    const message = (error as Error).message;
    expect(message).toContain("progress deadline exceeded");
    expect(message).toContain("the previous pods keep serving");
    expect(message).toContain("pod web-new222-bbbbb: Pending");
    expect(message).toContain("waiting: ImagePullBackOff");
    expect(message).toContain('Failed to pull image "registry.example/tool-demo/web@sha256:aaaa": not found');
    // Only the new revision's pods, only warnings, newest last.
    expect(message).not.toContain("web-old111-aaaaa");
    expect(message).not.toContain("Successfully assigned");
    expect(message.indexOf("not found")).toBeLessThan(message.indexOf("Error: ImagePullBackOff"));
    expect((error as SlipwayError).details?.pods).toEqual(
      expect.arrayContaining([expect.stringContaining("ImagePullBackOff")]),
    );
    const eventLists = kube.requests.filter((r) => r.path === "/api/v1/namespaces/tool-demo/events");
    expect(eventLists.map((r) => r.query.fieldSelector)).toContain(
      "involvedObject.kind=Pod,involvedObject.name=web-new222-bbbbb",
    );
  });

  it("gives up after the timeout and reports a crash-looping container's exit code", async () => {
    seedRollout(kube.get("Deployment", NS, "web")!, {
      phase: "Running",
      containerStatuses: [
        {
          name: "web",
          ready: false,
          restartCount: 4,
          image: IMAGE,
          imageID: "",
          state: {
            waiting: { reason: "CrashLoopBackOff", message: "back-off 1m20s restarting failed container" },
          },
          lastState: {
            terminated: {
              exitCode: 3,
              reason: "Error",
              startedAt: "2026-12-02T02:00:00Z",
              finishedAt: "2026-12-02T02:00:01Z",
            },
          },
        },
      ],
    });
    kube.scriptRollout(NS, "web", [
      {
        replicas: 2,
        updatedReplicas: 1,
        availableReplicas: 1,
        conditions: [progressing("ReplicaSetUpdated")],
      },
    ]);
    const error = await applier.waitForRollout(NS, "web", { timeoutS: 0.3, pollMs: 20 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PipelineError);
    const message = (error as Error).message;
    expect(message).toContain("not rolled out within 0.3 s (1 pod of the previous revision still running)");
    expect(message).toContain("waiting: CrashLoopBackOff");
    expect(message).toContain("restarts=4");
    expect(message).toContain("last exit: code 3 (Error)");
  });

  it("stops waiting when the deploy is cancelled", async () => {
    kube.scriptRollout(NS, "web", [{ replicas: 1, updatedReplicas: 0, availableReplicas: 1 }]);
    const controller = new AbortController();
    const waiting = applier.waitForRollout(NS, "web", {
      timeoutS: 600,
      pollMs: 20,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error("cancelled by test")), 50);
    await expect(waiting).rejects.toThrow("cancelled by test");
  });
});

describe("KubernetesRuntime", () => {
  const release = { id: "r7", tool: "rt", commit: "89abcdef0123456789abcdef0123456789abcdef" } as Release;
  const runtime = () =>
    new KubernetesRuntime(
      applier,
      {
        getRelease: (id) => Promise.resolve(id === release.id ? release : undefined),
        listTools: () => Promise.resolve([{ name: release.tool }]),
      },
      { render: OPTIONS, rolloutTimeoutS: 30, pollMs: 10 },
      logger,
    );
  const spec = {
    tool: "rt",
    process: "web",
    releaseId: "r7",
    image: IMAGE,
    env: { PORT: "8000", API_KEY: "s3cr3t" },
    port: 8000,
    memoryMb: 256,
  };

  it("starts the web process as a rolled-out Deployment with its Service, Ingress and env Secret", async () => {
    kube.scriptRollout("tool-rt", "web", [
      { replicas: 1, updatedReplicas: 1, availableReplicas: 0 },
      { replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
    ]);
    const app = await runtime().start(spec);
    expect(app).toEqual({
      id: "tool-rt/web@r7",
      tool: "rt",
      process: "web",
      releaseId: "r7",
      address: { host: "web.tool-rt.svc", port: 8000 },
    });
    const patched = kube.requests.filter((r) => r.method === "PATCH").map((r) => r.path);
    expect(patched[3]).toBe("/apis/networking.k8s.io/v1/namespaces/tool-rt/networkpolicies/tool-isolation");
    expect(patched.slice(4)).toEqual([
      "/api/v1/namespaces/tool-rt/secrets/web-env",
      "/api/v1/namespaces/tool-rt/services/web",
      "/apis/apps/v1/namespaces/tool-rt/deployments/web",
      "/apis/networking.k8s.io/v1/namespaces/tool-rt/ingresses/web",
    ]);
    const secret = kube.get("Secret", "tool-rt", "web-env") as KubeObject & { data: Record<string, string> };
    expect(Object.keys(secret.data)).toEqual(["API_KEY"]); // PORT is the pod template's, not a secret
    const deployment = kube.get("Deployment", "tool-rt", "web") as KubeObject & {
      spec: {
        template: {
          metadata: { labels: Record<string, string> };
          spec: { containers: { resources: { limits: { memory: string } } }[] };
        };
      };
    };
    expect(deployment.spec.template.metadata.labels["slipway.dev/commit"]).toBe(release.commit);
    expect(deployment.spec.template.spec.containers[0]?.resources.limits.memory).toBe("256Mi");

    expect(await runtime().list("rt")).toEqual([app]);
  });

  it("stops only an app whose release still runs, and reads a process's logs from its newest pod", async () => {
    kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "web-abc-12345",
        namespace: "tool-rt",
        labels: { "slipway.dev/component": "web", "slipway.dev/release": "r7" },
        annotations: { "double/log": "listening on 8000\nGET / 200" },
      },
    });
    expect(await runtime().logs("tool-rt/web@r7", 1)).toEqual(["GET / 200"]);
    const logRead = kube.requests.find((r) => r.path.endsWith("/pods/web-abc-12345/log"));
    expect(logRead?.query).toMatchObject({ container: "web", tailLines: "1" });

    await runtime().stop("tool-rt/web@r6"); // replaced by r7 already: nothing to do
    expect(kube.requests.filter((r) => r.method === "DELETE")).toEqual([]);
    await runtime().stop("tool-rt/web@r7");
    expect(kube.get("Deployment", "tool-rt", "web")).toBeUndefined();
    expect(kube.get("Service", "tool-rt", "web")).toBeUndefined();
    expect(kube.get("Ingress", "tool-rt", "web")).toBeUndefined();
    expect(kube.get("Secret", "tool-rt", "web-env")).toBeUndefined();
    expect(await runtime().list("rt")).toEqual([]);
  });

  it("runs a release phase once as a Job and reports its exit code and output", async () => {
    kube.scriptStatus("Job", "tool-rt", "release-r7", [{ active: 1 }, { active: 1 }, { failed: 1 }]);
    kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "release-r7-xyz",
        namespace: "tool-rt",
        labels: { "job-name": "release-r7" },
        annotations: { "double/log": "migrating\nerror: table exists" },
      },
      status: {
        phase: "Failed",
        containerStatuses: [
          {
            name: "release",
            ready: false,
            restartCount: 0,
            image: IMAGE,
            imageID: "",
            state: { terminated: { exitCode: 2 } },
          },
        ],
      },
    });
    const lines: string[] = [];
    const once = {
      tool: spec.tool,
      releaseId: spec.releaseId,
      image: spec.image,
      env: spec.env,
      memoryMb: spec.memoryMb,
    };
    const result = await runtime().runOnce({ ...once, process: "release" }, "release", 30, (l) =>
      lines.push(l),
    );
    expect(result).toEqual({ code: 2, timedOut: false, tail: ["migrating", "error: table exists"] });
    expect(lines).toEqual(["migrating", "error: table exists"]);
    const job = kube.get("Job", "tool-rt", "release-r7") as KubeObject & {
      spec: { template: { spec: { containers: { command: string[] }[] } } };
    };
    expect(job.spec.template.spec.containers[0]?.command).toEqual(["/cnb/process/release"]);
  });
});
