import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesJobsRuntime } from "../services/adapters/kubernetes/jobs-runtime.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { JobService } from "../services/domain/jobs/job-service.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../services/domain/jobs/runner.js";
import type { Release } from "../services/domain/releases/release.js";
import { memoryLogger } from "../services/platform/logger.js";
import { waitFor } from "./helpers/apps.js";
import {
  startKubeDouble,
  type KubeDouble,
  type KubeObject,
  type PodScript,
  kubeConfigFor,
} from "./helpers/kube-double.js";
import { type JobsApi, startJobsApi } from "./helpers/jobs-api.js";
import { startRedis } from "./helpers/redis.js";

// The jobs API on the cluster profile: real Redis (jobs store, run logs), the real JobService, HTTP
// router and JobRunner, the Kubernetes jobs runtime over client-node, and the HTTP double of the API
// server playing the Job controller and kubelet (pods, their states and logs) as each test scripts.
// Every test here also runs against a real kube-apiserver in test/kubernetes-parity.test.ts (issue 14);
// the double stays so these behaviours are checked where the Kubernetes binaries are missing (the
// real-server tests skip there).

const TOOL = "kj";
const NS = "tool-kj";
const RUNNER = "slipway-jobs-test";
const DIGEST = `sha256:${"a".repeat(64)}`;
const IMAGE = `registry.example:5000/tool-kj/web@${DIGEST}`;
const RELEASE: Release = {
  id: "rel1",
  tool: TOOL,
  component: "web",
  build_id: "b1",
  commit: "0123456789abcdef0123456789abcdef01234567",
  image: "registry.example:5000/tool-kj/web:0123456",
  image_digest: DIGEST,
  trigger: { kind: "api", ref: "refs/heads/main" },
  status: "live",
  created_at: new Date().toISOString(),
};

const releases = new Map<string, Release>([[RELEASE.id, RELEASE]]);

let redisServer: { url: string; stop: () => Promise<void> };
let redis: Redis;
let kube: KubeDouble;
let store: RedisJobsStore;
let runner: JobRunner;
let jobs: JobService;
let runtime: KubernetesJobsRuntime;
let jobsApi: JobsApi | undefined;
let base: string;
/** The runner's clock for schedules; moved forward by the scheduled-job test. */
let clockOffsetMs = 0;
/** What each job's pod does, by job name. */
const scripts = new Map<string, PodScript>();
const logger = memoryLogger();

async function api<T>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${route}`, {
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
    30_000,
    50,
  );

/** Objects of a job the double holds now: Jobs, pods, Secrets. */
function objectsOf(job: string): { jobs: number; pods: number; secrets: number } {
  const labels = { "slipway.dev/job": job };
  return {
    jobs: kube.list("Job", NS, labels).length,
    pods: kube.list("Pod", NS, labels).length,
    secrets: kube.list("Secret", NS, labels).length,
  };
}

/** The Job bodies the runtime applied for `job`, in order. */
function appliedJobs(job: string): KubeObject[] {
  return kube.requests
    .filter((r) => r.method === "PATCH" && r.path.includes("/jobs/"))
    .map((r) => r.body as KubeObject)
    .filter((o) => o.metadata.labels?.["slipway.dev/job"] === job);
}

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: 3 });
  kube = await startKubeDouble();
  kube.runJobs((job) => scripts.get(job.metadata.labels?.["slipway.dev/job"] ?? ""));
  store = RedisJobsStore.create(redis);
  jobs = new JobService({
    jobs: store,
    store: {
      getRoute: (t) =>
        Promise.resolve(
          t === TOOL
            ? { tool: TOOL, release_id: RELEASE.id, host: "web.tool-kj.svc", port: 8000 }
            : undefined,
        ),
      getRelease: (id) => Promise.resolve(releases.get(id)),
    },
    imageOf: () => IMAGE,
    logger,
  });
  const kc = kubeConfigFor(kube.url);
  runtime = new KubernetesJobsRuntime(
    kc,
    new KubernetesApplier(kc, logger),
    {
      getRelease: (id) => Promise.resolve(releases.get(id)),
      listTools: () => Promise.resolve([{ name: TOOL }]),
    },
    { runner: RUNNER, startTimeoutS: 1, pollMs: 20 },
    logger,
  );
  runner = new JobRunner({
    store,
    runtime,
    envFor: () => Promise.resolve({ API_KEY: "s3cr3t-value" }),
    logger,
    options: { ...DEFAULT_RUNNER_OPTIONS, tickMs: 50, memoryMb: 256, owner: "test" },
    now: () => new Date(Date.now() + clockOffsetMs),
  });
  await runner.start();

  jobsApi = await startJobsApi(jobs, TOOL, logger);
  base = jobsApi.base;
});

afterAll(async () => {
  for (const j of (await store?.listJobs(TOOL)) ?? []) await store.deleteJob(TOOL, j.name);
  await runner?.close();
  await jobsApi?.close();
  await kube?.close();
  redis?.disconnect();
  await redisServer?.stop();
});

beforeEach(() => kube.reset());

describe("jobs on Kubernetes", () => {
  it("runs a one-off job as a Job: --wait returns its output and exit code, the objects go, the log stays", async () => {
    scripts.set("hello", { lines: ["hello from the cluster", "second line", "third"], exitCode: 3 });
    const created = await api<{ run_id: string; type: string }>("POST", "", {
      name: "hello",
      command: "echo hello; exit 3",
    });
    expect(created.status).toBe(201);
    const done = await waitRun("hello", created.body.run_id);
    expect(done).toMatchObject({ exit_code: 3, status: "failed" });
    expect(done.runs.map((r) => r.lines)).toEqual([["hello from the cluster", "second line", "third"]]);

    // One Job, as the runner asked for it: its own run, no retries by Kubernetes, the env not in it.
    const [job] = appliedJobs("hello");
    expect(job).toMatchObject({
      metadata: {
        name: `hello-${created.body.run_id}`,
        namespace: NS,
        labels: {
          "app.kubernetes.io/managed-by": "slipway",
          "slipway.dev/tool": TOOL,
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
    expect(JSON.stringify(job)).not.toContain("s3cr3t-value");
    expect(JSON.stringify(logger.entries)).not.toContain("s3cr3t-value");
    const secret = kube.requests.find(
      (r) => r.method === "PATCH" && r.path.endsWith(`/secrets/hello-${created.body.run_id}-env`),
    );
    const data = (secret?.body as { data: Record<string, string> }).data;
    expect(Buffer.from(data.API_KEY!, "base64").toString()).toBe("s3cr3t-value");

    // Job, pod (deleted with Background propagation) and Secret are gone; the output is still readable.
    expect(objectsOf("hello")).toEqual({ jobs: 0, pods: 0, secrets: 0 });
    const deletes = kube.requests.filter(
      (r) => r.method === "DELETE" && r.path.endsWith(`/jobs/hello-${created.body.run_id}`),
    );
    expect(deletes.at(-1)?.query.propagationPolicy).toBe("Background");
    const logs = await api<{ runs: { id: string; lines: string[] }[] }>("GET", "/hello/logs");
    expect(logs.body.runs).toEqual([
      expect.objectContaining({
        id: created.body.run_id,
        lines: ["hello from the cluster", "second line", "third"],
      }),
    ]);
  });

  it("records a failing job's exit code and retries it as new Jobs, each attempt with its own log", async () => {
    scripts.set("flaky", { lines: ["attempt"], exitCode: 2 });
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
    expect(new Set(appliedJobs("flaky").map((j) => j.metadata.name)).size).toBe(3);
    expect(objectsOf("flaky")).toEqual({ jobs: 0, pods: 0, secrets: 0 });
  });

  it("fires a scheduled job's run as a Job", async () => {
    scripts.set("tick", { lines: ["tick ran"] });
    const created = await api("POST", "", { name: "tick", command: "./tick", schedule: "* * * * *" });
    expect(created.status).toBe(201);
    // Once the runner has planned the next minute, that minute comes: its clock moves on, not the wall clock.
    const next = await waitFor(
      "the next run to be planned",
      async () =>
        (await api<{ status: { next_run_at: string | null } }>("GET", "/tick")).body.status.next_run_at ??
        undefined,
      30_000,
      50,
    );
    clockOffsetMs = new Date(next).getTime() - Date.now() + 1000;
    const run = await waitFor(
      "the scheduled run to end",
      async () => {
        const show = await api<{ runs: { id: string; status: string; trigger: string }[] }>("GET", "/tick");
        return show.body.runs.find((r) => r.trigger === "schedule" && r.status !== "running");
      },
      30_000,
      50,
    );
    expect(run.status).toBe("succeeded");
    expect(appliedJobs("tick")[0]?.metadata.name).toBe(`tick-${run.id}`);
    const logs = await api<{ runs: { lines: string[] }[] }>("GET", `/tick/logs?run=${run.id}`);
    expect(logs.body.runs[0]?.lines).toEqual(["tick ran"]);
    await api("DELETE", "/tick");
  });

  it("deletes the Job and its pod when a running job is deleted or times out (exit code 137)", async () => {
    scripts.set("bot", { lines: ["bot up"], hold: true });
    await api("POST", "", { name: "bot", command: "worker", continuous: true });
    await waitFor(
      "the bot's pod to run",
      () => Promise.resolve(objectsOf("bot").pods === 1 ? true : undefined),
      30_000,
      50,
    );
    const deleted = await api("DELETE", "/bot");
    expect(deleted.status).toBe(200);
    await waitFor(
      "the bot's Job, pod and Secret to go",
      () => {
        const left = objectsOf("bot");
        return Promise.resolve(left.jobs + left.pods + left.secrets === 0 ? true : undefined);
      },
      30_000,
      50,
    );

    scripts.set("slow", { lines: ["start"], hold: true });
    const slow = await api<{ run_id: string }>("POST", "", {
      name: "slow",
      command: "sleep 600",
      timeout: 1,
    });
    const done = await waitRun("slow", slow.body.run_id);
    expect(done).toMatchObject({ status: "timeout", exit_code: 137 });
    expect(done.runs[0]!.lines).toEqual(["start"]);
    expect(objectsOf("slow")).toEqual({ jobs: 0, pods: 0, secrets: 0 });
  });

  it("keeps a run's output readable after the pod is gone", async () => {
    scripts.set("report", { lines: ["line 1", "line 2", "line 3", "line 4", "line 5"], exitCode: 0 });
    const created = await api<{ run_id: string }>("POST", "", { name: "report", command: "./report" });
    await waitRun("report", created.body.run_id);
    expect(kube.list("Pod", NS, { "slipway.dev/run": created.body.run_id })).toEqual([]);
    const logs = await api<{ runs: { lines: string[] }[] }>("GET", "/report/logs");
    expect(logs.body.runs[0]!.lines).toEqual(["line 1", "line 2", "line 3", "line 4", "line 5"]);
  });

  it("keeps what a run printed when its Job and pod are deleted behind Slipway's back", async () => {
    scripts.set("gone", { lines: ["working 1", "working 2"], hold: true });
    const created = await api<{ run_id: string }>("POST", "", { name: "gone", command: "./work" });
    const job = `gone-${created.body.run_id}`;
    await waitFor(
      "the run to print",
      async () => {
        const logs = await api<{ runs: { lines: string[] }[] }>("GET", "/gone/logs");
        return logs.body.runs[0]?.lines.length === 2 ? true : undefined;
      },
      30_000,
      50,
    );
    kube.drop("Job", NS, job); // as `kubectl delete job` would, with its pod
    const done = await waitRun("gone", created.body.run_id);
    expect(done).toMatchObject({ exit_code: 137, status: "failed" });
    expect(done.runs[0]!.lines).toEqual([
      "working 1",
      "working 2",
      "slipway: the run's Job was deleted outside Slipway",
    ]);
  });

  it("ends a run whose image never pulls with the reason in its log", async () => {
    scripts.set("nopull", {
      waiting: { reason: "ImagePullBackOff", message: `Back-off pulling image "${IMAGE}"` },
    });
    const created = await api<{ run_id: string }>("POST", "", { name: "nopull", command: "./x" });
    const done = await waitRun("nopull", created.body.run_id);
    expect(done.status).toBe("failed");
    expect(done.exit_code).toBeNull();
    const text = done.runs[0]!.lines.join("\n");
    expect(text).toContain("ImagePullBackOff");
    expect(text).toContain(`Back-off pulling image "${IMAGE}"`);
    // The kubelet's Warning event is in the report too.
    expect(text).toContain(`Failed to pull image "${IMAGE}"`);
    expect(done.runs[0]!.reason).toContain("did not start");
    expect(objectsOf("nopull")).toEqual({ jobs: 0, pods: 0, secrets: 0 });
  });

  it("removes only the Jobs and Secrets its own runner left behind", async () => {
    const labels = (runner: string) => ({
      "app.kubernetes.io/managed-by": "slipway",
      "slipway.dev/tool": TOOL,
      "slipway.dev/job": "old",
      "slipway.dev/runner": runner,
    });
    kube.seed({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "old-mine", namespace: NS, labels: labels(RUNNER) },
    });
    kube.seed({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "old-mine-env", namespace: NS, labels: labels(RUNNER) },
    });
    kube.seed({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "old-other", namespace: NS, labels: labels("someone-else") },
    });
    expect(await runtime.removeLeftovers()).toBe(1);
    expect(kube.get("Job", NS, "old-mine")).toBeUndefined();
    expect(kube.get("Secret", NS, "old-mine-env")).toBeUndefined();
    expect(kube.get("Job", NS, "old-other")).toBeDefined();
  });

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
    // A continuous config job left from the local profile: the runner starts a Job for it.
    await jobs.syncRelease(rel2);
    await waitFor(
      "the runner's Job for the worker",
      () => Promise.resolve(appliedJobs("queue-worker")[0]),
      10_000,
      20,
    );

    // What the cluster profile's deployer does once the release is live: the worker and the CronJob are
    // the cluster's now, and the runner stops its own Job.
    const synced = await jobs.syncRelease(rel2, { onCluster: ["continuous", "scheduled"] });
    expect(synced.updated.sort()).toEqual(["cleanup", "queue-worker"]);
    const list = await api<{ name: string; type: string; source: string; runs_on: string }[]>("GET", "");
    const fromConfig = list.body.filter((j) => j.source === "config");
    expect(fromConfig.map((j) => [j.name, j.type, j.runs_on])).toEqual([
      ["cleanup", "scheduled", "cluster"],
      ["migrate", "one-off", "slipway"],
      ["queue-worker", "continuous", "cluster"],
    ]);
    await waitFor(
      "the runner's Job to go",
      () => Promise.resolve(objectsOf("queue-worker").jobs === 0 ? true : undefined),
      10_000,
      20,
    );
    expect((await api<{ error: { code: string } }>("DELETE", "/queue-worker")).status).toBe(409);

    scripts.set("migrate", { lines: ["Applying migrations... OK"], exitCode: 0 });
    const run = await api<{ run_id: string }>("POST", "", { name: "migrate" });
    expect(run.status).toBe(201);
    const done = await waitRun("migrate", run.body.run_id);
    expect(done).toMatchObject({ status: "succeeded", exit_code: 0 });
    expect(done.runs[0]!.lines).toEqual(["Applying migrations... OK"]);
    expect(appliedJobs("migrate")[0]?.metadata.labels).toMatchObject({ "slipway.dev/release": "rel2" });
    await api("DELETE", "/migrate");
    await store.deleteJob(TOOL, "queue-worker");
    await store.deleteJob(TOOL, "cleanup");
  });
});
