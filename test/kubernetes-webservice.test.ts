import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesRuntime } from "../services/adapters/kubernetes/runtime.js";
import { KubernetesWebLogFollower } from "../services/adapters/kubernetes/web-logs.js";
import { RedisProcessLogs } from "../services/adapters/store/redis-process-logs.js";
import type { Release } from "../services/domain/releases/release.js";
import { WebserviceService } from "../services/domain/releases/webservice-service.js";
import { memoryLogger } from "../services/platform/logger.js";
import type { Route } from "../services/ports/store.js";
import { waitFor } from "./helpers/apps.js";
import { startKubeDouble, type KubeDouble, kubeConfigFor } from "./helpers/kube-double.js";
import { startRedis } from "./helpers/redis.js";

// `slipway webservice logs|status` on the cluster profile: web pods' output followed into real Redis
// (ProcessLogs) through client-node against the API double, and the status read from the Deployment.
// Every test here also runs against a real kube-apiserver in test/kubernetes-parity.test.ts (issue 14);
// the double stays so these behaviours are checked where the Kubernetes binaries are missing (the
// real-server tests skip there).

const TOOL = "kw";
const NS = "tool-kw";
const RELEASE: Release = {
  id: "rel7",
  tool: TOOL,
  component: "web",
  build_id: "b7",
  commit: "0123456789abcdef0123456789abcdef01234567",
  image: "registry.example:5000/tool-kw/web:0123456",
  image_digest: `sha256:${"b".repeat(64)}`,
  trigger: { kind: "api", ref: "refs/heads/main" },
  status: "live",
  created_at: new Date().toISOString(),
};
const route: Route = { tool: TOOL, release_id: RELEASE.id, host: `web.${NS}.svc`, port: 8000 };

const labels = (release: string) => ({
  "app.kubernetes.io/component": "webservice",
  "app.kubernetes.io/managed-by": "slipway",
  "slipway.dev/component": "web",
  "slipway.dev/release": release,
  "slipway.dev/tool": TOOL,
});

let redisServer: { url: string; stop: () => Promise<void> };
let redis: Redis;
let kube: KubeDouble;
let logs: RedisProcessLogs;

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: 3 });
  kube = await startKubeDouble();
  logs = new RedisProcessLogs(redis);
});

afterAll(async () => {
  await kube?.close();
  redis?.disconnect();
  await redisServer?.stop();
});

function seedWebPod(name: string, release: string) {
  kube.seed({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, labels: labels(release) },
    spec: { containers: [{ name: "web", image: RELEASE.image }] },
    status: {
      phase: "Running",
      containerStatuses: [
        { name: "web", ready: true, restartCount: 0, image: "x", imageID: "", state: { running: {} } },
      ],
    },
  });
}

describe("webservice output and status on Kubernetes", () => {
  it("keeps the live release's web pods' output, readable after the pods are gone", async () => {
    seedWebPod("web-abc12-aaaaa", RELEASE.id);
    seedWebPod("web-old99-bbbbb", "rel6"); // a pod of an older release: not this release's output
    kube.printLog(NS, "web-abc12-aaaaa", ["GET / 200", "GET /health 200"]);
    kube.printLog(NS, "web-old99-bbbbb", ["old release line"]);
    const follower = new KubernetesWebLogFollower(kubeConfigFor(kube.url), {
      store: {
        listTools: () => Promise.resolve([{ name: TOOL }] as never),
        getRoute: () => Promise.resolve(route),
      },
      logs,
      logger: memoryLogger(),
      options: { pollMs: 20 },
    });
    follower.start();
    try {
      const kept = () => logs.read(TOOL, RELEASE.id, 100).then((l) => l.map((x) => x.line));
      await waitFor(
        "the first lines to be kept",
        async () => ((await kept()).length >= 2 ? true : undefined),
        20_000,
        50,
      );
      // Lines printed while the follow is open arrive too, each once.
      kube.printLog(NS, "web-abc12-aaaaa", ["POST /edit 302"]);
      await waitFor(
        "the new line to be kept",
        async () => ((await kept()).length >= 3 ? true : undefined),
        20_000,
        50,
      );
      kube.drop("Pod", NS, "web-abc12-aaaaa");
      // Another replica of the same release comes up after the first one went.
      seedWebPod("web-abc12-ccccc", RELEASE.id);
      kube.printLog(NS, "web-abc12-ccccc", ["replica two"]);
      await waitFor(
        "the new pod's line",
        async () => ((await kept()).length >= 4 ? true : undefined),
        20_000,
        50,
      );
      expect(await kept()).toEqual(["GET / 200", "GET /health 200", "POST /edit 302", "replica two"]);
      expect(await logs.releases(TOOL)).toEqual([RELEASE.id]);
    } finally {
      await follower.close();
    }
  });

  it("reports how many web pods of the live release are ready", async () => {
    kube.seed({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: NS, labels: labels(RELEASE.id) },
      spec: { replicas: 3 },
      status: { replicas: 3, readyReplicas: 2, availableReplicas: 2 },
    });
    const logger = memoryLogger();
    const runtime = new KubernetesRuntime(
      new KubernetesApplier(kubeConfigFor(kube.url), logger),
      {
        getRelease: () => Promise.resolve(RELEASE),
        listTools: () => Promise.resolve([{ name: RELEASE.tool }]),
      },
      { render: { domain: "toolforge.example", ingressClassName: "nginx" }, rolloutTimeoutS: 10 },
      logger,
    );
    const service = new WebserviceService({
      store: {
        getRoute: () => Promise.resolve(route),
        getRelease: () => Promise.resolve(RELEASE),
      } as never,
      runtime,
      replicas: (t, r) => runtime.replicas(t, r),
      logs,
      marks: logs,
      restart: () => Promise.resolve(null),
    });
    expect(await service.status(TOOL)).toMatchObject({
      state: "running",
      release_id: RELEASE.id,
      replicas_ready: 2,
      replicas_wanted: 3,
    });
    kube.seed({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: NS, labels: labels(RELEASE.id) },
      spec: { replicas: 1 },
      status: { replicas: 1, unavailableReplicas: 1 },
    });
    expect(await service.status(TOOL)).toMatchObject({
      state: "missing",
      replicas_ready: 0,
      replicas_wanted: 1,
    });
  });
});
