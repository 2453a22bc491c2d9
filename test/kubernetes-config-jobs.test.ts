import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesConfigJobFollower } from "../services/adapters/kubernetes/config-job-logs.js";
import { KubernetesJobsRuntime } from "../services/adapters/kubernetes/jobs-runtime.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { JobService } from "../services/domain/jobs/job-service.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../services/domain/jobs/runner.js";
import type { Release } from "../services/domain/releases/release.js";
import { memoryLogger } from "../services/platform/logger.js";
import { waitFor } from "./helpers/apps.js";
import { startKubeDouble, type KubeDouble, kubeConfigFor } from "./helpers/kube-double.js";
import { type JobsApi, startJobsApi } from "./helpers/jobs-api.js";
import { startRedis } from "./helpers/redis.js";

// A config's workers (Deployments) and CronJobs on the cluster profile: recorded as jobs the cluster
// runs, their pods followed into runs with logs in real Redis, through client-node against the API
// double; the real JobRunner (with the Kubernetes jobs runtime) beside them must not run them too.
// Every test here also runs against a real kube-apiserver in test/kubernetes-parity.test.ts (issue 14);
// the double stays so these behaviours are checked where the Kubernetes binaries are missing (the
// real-server tests skip there).

const TOOL = "kc";
const NS = "tool-kc";
const DIGEST = `sha256:${"c".repeat(64)}`;
const IMAGE = `registry.example:5000/tool-kc/web@${DIGEST}`;
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
  tool: TOOL,
  component: "web",
  build_id: "b1",
  commit: "0123456789abcdef0123456789abcdef01234567",
  image: "registry.example:5000/tool-kc/web:0123456",
  image_digest: DIGEST,
  trigger: { kind: "api", ref: "refs/heads/main" },
  status: "live",
  created_at: new Date().toISOString(),
  config,
};
const route = { tool: TOOL, release_id: RELEASE.id, host: `web.${NS}.svc`, port: 8000 };
const logger = memoryLogger();

let redisServer: { url: string; stop: () => Promise<void> };
let redis: Redis;
let kube: KubeDouble;
let store: RedisJobsStore;
let jobs: JobService;
let runner: JobRunner;
let follower: KubernetesConfigJobFollower;
let jobsApi: JobsApi | undefined;
let base: string;
/** The runner's clock runs 30 s ahead at every look, so the `* * * * *` schedule comes due at once. */
let clockOffsetMs = 0;

async function api<T>(method: string, path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, { method });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/** A pod as the Deployment or CronJob of `component` makes it, its container running. */
function seedPod(name: string, component: string, kind: "worker" | "scheduled") {
  kube.seed({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: NS,
      labels: {
        "app.kubernetes.io/component": kind,
        "app.kubernetes.io/managed-by": "slipway",
        "slipway.dev/component": component,
        "slipway.dev/release": RELEASE.id,
        "slipway.dev/tool": TOOL,
      },
    },
    spec: { containers: [{ name: component, image: IMAGE }] },
    status: {
      phase: "Running",
      containerStatuses: [
        {
          name: component,
          ready: true,
          restartCount: 0,
          image: IMAGE,
          imageID: "",
          state: { running: { startedAt: new Date().toISOString() } },
        },
      ],
    },
  });
}

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: 3 });
  kube = await startKubeDouble();
  // Were the runner to start a Job for these jobs, its pod would run and print.
  kube.runJobs(() => ({ lines: ["run by the runner"], exitCode: 0 }));
  store = RedisJobsStore.create(redis);
  const state = {
    listTools: () => Promise.resolve([{ name: TOOL }] as never),
    getRoute: (t: string) => Promise.resolve(t === TOOL ? route : undefined),
    getRelease: (id: string) => Promise.resolve(id === RELEASE.id ? RELEASE : undefined),
  };
  jobs = new JobService({ jobs: store, store: state, imageOf: () => IMAGE, logger });
  const kc = kubeConfigFor(kube.url);
  runner = new JobRunner({
    store,
    runtime: new KubernetesJobsRuntime(
      kc,
      new KubernetesApplier(kc, logger),
      state,
      { runner: "slipway-config-jobs-test", startTimeoutS: 1, pollMs: 20 },
      logger,
    ),
    envFor: () => Promise.resolve({}),
    logger,
    options: { ...DEFAULT_RUNNER_OPTIONS, tickMs: 50, memoryMb: 256, owner: "test" },
    now: () => new Date(Date.now() + (clockOffsetMs += 30_000)),
  });
  await runner.start();
  follower = new KubernetesConfigJobFollower(kc, {
    store: state,
    jobs: store,
    logger,
    options: { pollMs: 20 },
  });

  jobsApi = await startJobsApi(jobs, TOOL, logger);
  base = jobsApi.base;
});

afterAll(async () => {
  await follower?.close();
  await runner?.close();
  for (const j of (await store?.listJobs(TOOL)) ?? []) await store.deleteJob(TOOL, j.name);
  await jobsApi?.close();
  await kube?.close();
  redis?.disconnect();
  await redisServer?.stop();
});

type JobShow = {
  name: string;
  type: string;
  runs_on: string;
  status: { state: string; last_exit_code: number | null; last_run_id: string | null };
  runs: {
    id: string;
    status: string;
    exit_code: number | null;
    trigger: string;
    finished_at: string | null;
  }[];
};

describe("a config's workers and CronJobs on Kubernetes", () => {
  it("lists them as the cluster's jobs and keeps each pod as a run, with exit code and output past the pod", async () => {
    // What the cluster profile's deployer does once the release is live.
    await jobs.syncRelease(RELEASE, { onCluster: ["continuous", "scheduled"] });
    const list = await api<JobShow[]>("GET", "");
    expect(list.body.map((j) => [j.name, j.type, j.runs_on])).toEqual([
      ["cleanup", "scheduled", "cluster"],
      ["queue-worker", "continuous", "cluster"],
    ]);

    seedPod("queue-worker-6d4f9c-abcde", "queue-worker", "worker");
    kube.printLog(NS, "queue-worker-6d4f9c-abcde", ["worker up", "took job 1"]);
    seedPod("cleanup-29400000-xyz12", "cleanup", "scheduled");
    kube.printLog(NS, "cleanup-29400000-xyz12", ["cleaning 12 rows"]);
    follower.start();

    const runLines = async (job: string, run: string) =>
      (await jobs.logs(TOOL, job, run)).flatMap((l) => l.lines);
    await waitFor(
      "the CronJob pod's first line",
      async () =>
        (await runLines("cleanup", "cleanup-29400000-xyz12").catch(() => [])).length ? true : undefined,
      20_000,
      20,
    );
    kube.printLog(NS, "cleanup-29400000-xyz12", ["could not reach the database"]);
    kube.terminate(NS, "cleanup-29400000-xyz12", 3);
    const cleanup = await waitFor(
      "the CronJob run to end",
      async () => {
        const show = await api<JobShow>("GET", "/cleanup");
        // The run and the job's status are two writes: wait for both, as a script polling would.
        return show.body.runs[0]?.finished_at && show.body.status.state !== "running" ? show.body : undefined;
      },
      20_000,
      20,
    );
    expect(cleanup.runs).toMatchObject([
      { id: "cleanup-29400000-xyz12", status: "failed", exit_code: 3, trigger: "schedule" },
    ]);
    expect(cleanup.status).toMatchObject({
      state: "waiting",
      last_exit_code: 3,
      last_run_id: "cleanup-29400000-xyz12",
    });
    // The CronJob's history limit takes the pod; the output stays.
    kube.drop("Pod", NS, "cleanup-29400000-xyz12");
    await new Promise((resolve) => setTimeout(resolve, 100));
    const logs = await api<{ runs: { id: string; lines: string[] }[] }>("GET", "/cleanup/logs");
    expect(logs.body.runs).toEqual([
      expect.objectContaining({
        id: "cleanup-29400000-xyz12",
        lines: ["cleaning 12 rows", "could not reach the database"],
      }),
    ]);

    // The worker's pod is a running run; once a rollout deletes it, the run ends and its log stays.
    await waitFor(
      "the worker's lines",
      async () =>
        (await runLines("queue-worker", "queue-worker-6d4f9c-abcde").catch(() => [])).length >= 2
          ? true
          : undefined,
      20_000,
      20,
    );
    const worker = await api<JobShow>("GET", "/queue-worker");
    expect(worker.body.status.state).toBe("running");
    expect(worker.body.runs).toMatchObject([{ id: "queue-worker-6d4f9c-abcde", status: "running" }]);
    kube.drop("Pod", NS, "queue-worker-6d4f9c-abcde");
    await waitFor(
      "the worker's run to end",
      async () => {
        const show = await api<JobShow>("GET", "/queue-worker");
        return show.body.runs[0]?.status === "stopped" ? true : undefined;
      },
      20_000,
      20,
    );
    expect(await runLines("queue-worker", "queue-worker-6d4f9c-abcde")).toEqual(["worker up", "took job 1"]);

    // Nothing ran twice: the runner (its clock well past the schedule's minutes) applied no Job.
    expect(clockOffsetMs).toBeGreaterThan(120_000);
    expect(kube.requests.some((r) => r.method === "PATCH" && r.path.includes("/jobs/"))).toBe(false);
    expect(kube.list("Job", NS)).toEqual([]);
    expect((await store.listRuns(TOOL, "cleanup")).map((r) => r.id)).toEqual(["cleanup-29400000-xyz12"]);

    // Slipway does not delete, restart or fire what the cluster runs; the answer says what does.
    const refused = await api<{ error: { message: string } }>("DELETE", "/queue-worker");
    expect(refused.status).toBe(409);
    expect(JSON.stringify(refused.body)).toContain("remove the component from slipway.yaml");
    expect((await api("POST", "/queue-worker/restart")).status).toBe(409);
    expect((await api<JobShow[]>("GET", "")).body).toHaveLength(2);
  });
});
