import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesRuntime } from "../services/adapters/kubernetes/runtime.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { JobService } from "../services/domain/jobs/job-service.js";
import { imageByDigest } from "../services/domain/releases/deployer.js";
import type { Deployer } from "../services/domain/releases/deployer.js";
import { deployerOnKubernetes } from "../services/domain/releases/kubernetes-rollout.js";
import type { Release } from "../services/domain/releases/release.js";
import { memoryLogger } from "../services/platform/logger.js";
import { startKubeDouble, type KubeDouble, type KubeObject, kubeConfigFor } from "./helpers/kube-double.js";
import { startRedis } from "./helpers/redis.js";

// The cluster profile's deployer end to end, minus the cluster: real Redis state, the real
// KubernetesApplier/KubernetesRuntime over client-node, and the HTTP double of the API server, which
// reports rollouts and Jobs as scripted. docs/kubernetes.md lists what only a live cluster would show.
// Every test here also runs against a real kube-apiserver in test/kubernetes-parity.test.ts (issue 14);
// the double stays so these behaviours are checked where the Kubernetes binaries are missing (the
// real-server tests skip there), and for what only it can show (the number of status reads).

const TOOL = "kd";
const NS = "tool-kd";
const REGISTRY = "registry.example:5000/tool-kd/web";
const OPTIONS = { domain: "toolforge.example", ingressClassName: "nginx" };

let redis: { url: string; stop: () => Promise<void> };
let kube: KubeDouble;
let store: RedisStore;
let client: Redis;
let logs: RedisBuildLogs;
let counter = 0;

beforeAll(async () => {
  redis = await startRedis();
  kube = await startKubeDouble();
  store = RedisStore.create(redis.url);
  client = new Redis(redis.url);
  logs = RedisBuildLogs.create(client);
});

afterAll(async () => {
  await store?.close();
  client?.disconnect();
  await kube?.close();
  await redis?.stop();
});

beforeEach(() => kube.reset());

/** A build and its release in `deploying`, as the build pipeline leaves them. */
async function newRelease(extra: Partial<Release> = {}): Promise<Release> {
  counter++;
  const id = `r${counter}`;
  const digest = `sha256:${String(counter).repeat(64).slice(0, 64)}`;
  const now = new Date(Date.now() + counter).toISOString();
  const build: Build = {
    id: `b${counter}`,
    tool: TOOL,
    component: "web",
    commit: "0123456789abcdef0123456789abcdef01234567",
    ref: "refs/heads/main",
    source_url: "http://example/git/kd",
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status: "deploying",
    created_at: now,
  };
  await store.createBuild(build);
  const release: Release = {
    id,
    tool: TOOL,
    component: "web",
    build_id: build.id,
    commit: build.commit,
    image: `${REGISTRY}:0123456`,
    image_digest: digest,
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
  } = {},
): Deployer {
  const logger = memoryLogger();
  const applier = new KubernetesApplier(kubeConfigFor(kube.url), logger);
  const runtime = new KubernetesRuntime(
    applier,
    store,
    { render: OPTIONS, rolloutTimeoutS: 20, pollMs: 10 },
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
    options: { render: OPTIONS, rolloutTimeoutS: 20, memoryMb: 256, pollMs: 10, releasePhaseTimeoutS: 10 },
  });
}

async function logText(release: Release): Promise<string> {
  return (await logs.read(release.build_id)).map((l) => l.line).join("\n");
}

type DeploymentObject = KubeObject & {
  spec: {
    template: { spec: { containers: { image: string; envFrom?: { secretRef: { name: string } }[] }[] } };
  };
};

describe("Deployer with the Kubernetes rollout", () => {
  it("applies the release's objects and makes it live once the Deployment has rolled out", async () => {
    const first = await newRelease();
    kube.scriptRollout(NS, "web", [
      { replicas: 1, updatedReplicas: 1, availableReplicas: 0 },
      { replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
    ]);
    await deployer().deploy(first.id, new AbortController().signal);

    expect(await store.getRelease(first.id)).toMatchObject({ status: "live" });
    expect(await store.getRoute(TOOL)).toMatchObject({
      release_id: first.id,
      host: `web.${NS}.svc`,
      port: 8000,
    });
    expect(kube.get("Namespace", undefined, NS)).toBeDefined();
    const deployment = kube.get("Deployment", NS, "web") as DeploymentObject;
    const container = deployment.spec.template.spec.containers[0]!;
    expect(container.image).toBe(`${REGISTRY}@${first.image_digest}`);
    expect(container.envFrom?.[0]?.secretRef.name).toBe("web-env");
    const secret = kube.get("Secret", NS, "web-env") as KubeObject & { data: Record<string, string> };
    expect(secret.data).toEqual({ API_KEY: Buffer.from("s3cr3t").toString("base64") }); // PORT is ours
    expect(kube.get("Service", NS, "web")).toBeDefined();
    const ingress = kube.get("Ingress", NS, "web") as KubeObject & { spec: { rules: { host: string }[] } };
    expect(ingress.spec.rules[0]?.host).toBe("kd.toolforge.example");
    const statusReads = kube.requests.filter(
      (r) => r.path === `/apis/apps/v1/namespaces/${NS}/deployments/web/status`,
    );
    expect(statusReads).toHaveLength(2);
    expect(await logText(first)).toContain(`===> LIVE: release ${first.id} serves ${TOOL}`);

    // The next release supersedes it.
    const second = await newRelease();
    kube.scriptRollout(NS, "web", [{ replicas: 1, updatedReplicas: 1, availableReplicas: 1 }]);
    await deployer().deploy(second.id, new AbortController().signal);
    expect(await store.getRelease(second.id)).toMatchObject({ status: "live" });
    expect(await store.getRelease(first.id)).toMatchObject({ status: "superseded" });
    expect(
      (kube.get("Deployment", NS, "web") as DeploymentObject).spec.template.spec.containers[0]!.image,
    ).toBe(`${REGISTRY}@${second.image_digest}`);
  });

  it("fails a stuck rollout with the new pod's reasons and events; the previous release stays live", async () => {
    const live = (await store.getRoute(TOOL))?.release_id;
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
    const deployment = kube.get("Deployment", NS, "web")!;
    const labels = { "slipway.dev/tool": TOOL, "slipway.dev/component": "web" };
    kube.seed({
      apiVersion: "apps/v1",
      kind: "ReplicaSet",
      metadata: {
        name: "web-new333",
        namespace: NS,
        labels: { ...labels, "pod-template-hash": "new333" },
        annotations: { "deployment.kubernetes.io/revision": "9" },
        ownerReferences: [{ uid: deployment.metadata.uid!, kind: "Deployment", name: "web" }],
      },
    });
    kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "web-new333-ccccc",
        namespace: NS,
        labels: { ...labels, "pod-template-hash": "new333" },
      },
      status: {
        phase: "Pending",
        containerStatuses: [
          {
            name: "web",
            ready: false,
            restartCount: 0,
            image: "x",
            imageID: "",
            state: { waiting: { reason: "ImagePullBackOff", message: "Back-off pulling image" } },
          },
        ],
      },
    });
    kube.seed({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "ev1", namespace: NS },
      involvedObject: { kind: "Pod", name: "web-new333-ccccc", namespace: NS },
      type: "Warning",
      reason: "Failed",
      message: "Failed to pull image: manifest unknown",
      lastTimestamp: "2026-12-02T03:00:00Z",
    });
    kube.scriptRollout(NS, "web", [
      {
        replicas: 2,
        updatedReplicas: 1,
        availableReplicas: 1,
        conditions: [
          {
            type: "Progressing",
            status: "False",
            reason: "ProgressDeadlineExceeded",
            message: 'ReplicaSet "web-new333" has timed out progressing.',
          },
        ],
      },
    ]);
    await deployer().deploy(release.id, new AbortController().signal);

    const failed = await store.getRelease(release.id);
    expect(failed?.status).toBe("failed");
    expect(failed?.reason).toContain("progress deadline exceeded");
    expect(failed?.reason).toContain("the previous pods keep serving");
    expect(failed?.reason).toContain("waiting: ImagePullBackOff");
    expect(failed?.reason).toContain("Failed to pull image: manifest unknown");
    expect((await store.getRoute(TOOL))?.release_id).toBe(live);
    expect(await store.getRelease(live!)).toMatchObject({ status: "live" });
    // The failed release's scheduled job was never applied.
    expect(kube.get("CronJob", NS, "nightly")).toBeUndefined();
    const build = await store.getBuild(release.build_id);
    expect(build).toMatchObject({ status: "failure", phase: "deploy" });
    expect(build?.reason).toContain("deploy failed: Deployment");
    expect(await logText(release)).toContain("===> DEPLOY FAILED");
  });

  it("runs the release phase as a Job first; a failing one blocks the rollout", async () => {
    const live = (await store.getRoute(TOOL))?.release_id;
    const liveImage = (kube.get("Deployment", NS, "web") as DeploymentObject).spec.template.spec
      .containers[0]!.image;
    const release = await newRelease({ processes: ["web", "release"] });
    const job = `release-${release.id}`;
    kube.scriptStatus("Job", NS, job, [{ active: 1 }, { failed: 1 }]);
    kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${job}-zzz`,
        namespace: NS,
        labels: { "job-name": job },
        annotations: { "double/log": "migrating\nerror: relation exists" },
      },
      status: {
        phase: "Failed",
        containerStatuses: [
          {
            name: "release",
            ready: false,
            restartCount: 0,
            image: "x",
            imageID: "",
            state: { terminated: { exitCode: 3 } },
          },
        ],
      },
    });
    await deployer().deploy(release.id, new AbortController().signal);

    const failed = await store.getRelease(release.id);
    expect(failed?.status).toBe("failed");
    expect(failed?.reason).toContain("release phase exited 3");
    expect(failed?.log_tail).toEqual(["migrating", "error: relation exists"]);
    // Nothing of the new release was applied: the web Deployment still runs the live image.
    expect(
      (kube.get("Deployment", NS, "web") as DeploymentObject).spec.template.spec.containers[0]!.image,
    ).toBe(liveImage);
    expect(kube.requests.some((r) => r.method === "PATCH" && r.path.endsWith("/deployments/web"))).toBe(
      false,
    );
    expect((await store.getRoute(TOOL))?.release_id).toBe(live);
    const jobObject = kube.get("Job", NS, job) as KubeObject & {
      spec: { template: { spec: { containers: { image: string; envFrom?: unknown[] }[] } } };
    };
    expect(jobObject.spec.template.spec.containers[0]!.image).toBe(`${REGISTRY}@${release.image_digest}`);
  });

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
    kube.scriptRollout(NS, "web", [{ replicas: 1, updatedReplicas: 1, availableReplicas: 1 }]);
    kube.scriptRollout(NS, "bot", [
      { replicas: 1, updatedReplicas: 0, availableReplicas: 0 },
      { replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
    ]);
    // As the server wires it: once live, the components become jobs; the cluster runs the worker and
    // the CronJob, the runner only the one-off (on demand).
    const jobsStore = RedisJobsStore.create(client);
    const jobs = new JobService({ jobs: jobsStore, store, imageOf: imageByDigest, logger: memoryLogger() });
    await deployer({
      onLive: (release) =>
        jobs.syncRelease(release, { onCluster: ["continuous", "scheduled"] }).then(() => undefined),
    }).deploy(full.id, new AbortController().signal);
    expect(
      (await jobsStore.listJobs(TOOL)).map((j) => [j.name, j.type, j.release_id, j.runs_on ?? "slipway"]),
    ).toEqual([
      ["bot", "continuous", full.id, "cluster"],
      ["migrate", "one-off", full.id, "slipway"],
      ["nightly", "scheduled", full.id, "cluster"],
    ]);
    expect(await store.getRelease(full.id)).toMatchObject({ status: "live" });
    expect(kube.get("CronJob", NS, "nightly")).toBeDefined();
    expect(kube.get("Deployment", NS, "bot")).toBeDefined();
    expect(kube.get("Secret", NS, "bot-env")).toBeDefined();
    // A one-off runs on demand; applying its Job would run it at every deploy.
    expect(kube.requests.some((r) => r.method === "PATCH" && r.path.includes("/jobs/"))).toBe(false);
    expect(kube.requests.filter((r) => r.path.endsWith("/deployments/bot/status"))).toHaveLength(2);

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
    expect(kube.get("CronJob", NS, "nightly")).toBeUndefined();
    expect(kube.get("Deployment", NS, "bot")).toBeUndefined();
    expect(kube.get("Secret", NS, "bot-env")).toBeUndefined();
    expect(kube.get("Deployment", NS, "web")).toBeDefined();
  });

  it("applies the tool's registry-pull Secret before the release phase Job, and prune keeps it", async () => {
    const pull = () =>
      Promise.resolve({ registry: "harbor.example", username: "robot$tool-kd+slipway-pull", password: "pw" });
    const release = await newRelease({ processes: ["web", "release"] });
    const job = `release-${release.id}`;
    kube.scriptStatus("Job", NS, job, [{ succeeded: 1 }]);
    kube.seed({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${job}-ok`,
        namespace: NS,
        labels: { "job-name": job },
        annotations: { "double/log": "migrated" },
      },
      status: {
        phase: "Succeeded",
        containerStatuses: [
          {
            name: "release",
            ready: false,
            restartCount: 0,
            image: "x",
            imageID: "",
            state: { terminated: { exitCode: 0 } },
          },
        ],
      },
    });
    kube.scriptRollout(NS, "web", [{ replicas: 1, updatedReplicas: 1, availableReplicas: 1 }]);
    await deployer({ pullCredentials: pull }).deploy(release.id, new AbortController().signal);
    const done = await store.getRelease(release.id);
    expect(done?.status, done?.reason).toBe("live");

    const writes = kube.requests
      .filter((r) => r.method === "PATCH" || r.method === "POST")
      .map((r) => r.path);
    const secretAt = writes.findIndex((p) => p.endsWith(`/namespaces/${NS}/secrets/registry-pull`));
    const jobAt = writes.findIndex((p) => p.includes(`/namespaces/${NS}/jobs`));
    expect(secretAt).toBeGreaterThanOrEqual(0);
    expect(secretAt).toBeLessThan(jobAt);
    const jobObject = kube.get("Job", NS, job) as KubeObject & {
      spec: { template: { spec: { imagePullSecrets?: { name: string }[] } } };
    };
    expect(jobObject.spec.template.spec.imagePullSecrets).toEqual([{ name: "registry-pull" }]);

    const secret = kube.get("Secret", NS, "registry-pull") as KubeObject & { type: string };
    expect(secret.type).toBe("kubernetes.io/dockerconfigjson");
    expect(
      kube.requests.some((r) => r.method === "DELETE" && r.path.endsWith("/secrets/registry-pull")),
    ).toBe(false);
  });
});
