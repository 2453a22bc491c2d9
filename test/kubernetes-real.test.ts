import express from "express";
import type { Server } from "node:http";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesJobsRuntime } from "../services/adapters/kubernetes/jobs-runtime.js";
import { KubernetesRuntime } from "../services/adapters/kubernetes/runtime.js";
import { RedisJobsStore } from "../services/adapters/store/redis-jobs.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { JobService } from "../services/domain/jobs/job-service.js";
import { DEFAULT_RUNNER_OPTIONS, JobRunner } from "../services/domain/jobs/runner.js";
import type { Deployer } from "../services/domain/releases/deployer.js";
import { deployerOnKubernetes } from "../services/domain/releases/kubernetes-rollout.js";
import type { Release } from "../services/domain/releases/release.js";
import { ToolService } from "../services/domain/tools/tool-service.js";
import { memoryLogger } from "../services/platform/logger.js";
import { run } from "../services/platform/process.js";
import { renderRouter } from "../services/roles/http/api-render.js";
import { errorHandler } from "../services/roles/http/errors.js";
import {
  SLIPWAY_TEST_SUBJECT,
  grantSlipway,
  kubeAssets,
  startKubeCluster,
  type KubeCluster,
} from "./helpers/kube-cluster.js";
import { startJobsApi, type JobsApi } from "./helpers/jobs-api.js";
import { startRedis } from "./helpers/redis.js";

// The cluster profile against a real kube-apiserver v1.24 with its controller-manager and scheduler
// (test/helpers/kube-cluster.ts): Slipway applies as its own user over client-node, the Deployment
// controller makes ReplicaSets and pods, the scheduler binds them, and the stand-in kubelet reports
// them Ready. What the HTTP double (test/helpers/kube-double.ts) could only script happens here.

const assets = kubeAssets();
if (assets.skip) console.warn(`kubernetes-real tests skipped: ${assets.skip}`);

const repoRoot = path.resolve(import.meta.dirname, "..");
const TOOL = "kr";
const NS = "tool-kr";
const REGISTRY = "registry.example:5000/tool-kr/web";
const OPTIONS = { domain: "toolforge.example", ingressClassName: "nginx" };
const ENV = { API_KEY: "s3cr3t-value" };
const CONFIG = parseComponentsConfig(
  [
    "config_version: v1beta1",
    "components:",
    "  web:",
    "    run:",
    "      command: web",
    "      port: 8000",
    "      publish: true",
    "  migrate:",
    "    component_type: one-off",
    "    run:",
    "      command: python3 migrate.py",
    "",
  ].join("\n"),
  "slipway.yaml",
);

describe.skipIf(assets.skip !== undefined)("Kubernetes profile on a real API server", () => {
  let cluster: KubeCluster;
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let store: RedisStore;
  let client: Redis;
  let logs: RedisBuildLogs;
  let counter = 0;

  beforeAll(async () => {
    [cluster, redis] = await Promise.all([startKubeCluster(), startRedis()]);
    store = RedisStore.create(redis.url);
    client = new Redis(redis.url);
    logs = RedisBuildLogs.create(client);
    await new ToolService(store, {
      publicUrl: "http://127.0.0.1:8080",
      webUrl: (t) => `http://${t}.toolforge.example/`,
    }).create(TOOL);
    await grantSlipway(cluster);
  }, 150_000);

  afterAll(async () => {
    await store?.close();
    client?.disconnect();
    await cluster?.stop();
    await redis?.stop();
  });

  async function newRelease(extra: Partial<Release> = {}): Promise<Release> {
    counter++;
    const digest = `sha256:${String(counter).repeat(64).slice(0, 64)}`;
    const now = new Date(Date.now() + counter).toISOString();
    const build: Build = {
      id: `b${counter}`,
      tool: TOOL,
      component: "web",
      commit: `${counter}`.repeat(40).slice(0, 40),
      ref: "refs/heads/main",
      source_url: "http://example/git/kr",
      trigger: { kind: "git_push", ref: "refs/heads/main" },
      status: "success",
      created_at: now,
    };
    await store.createBuild(build);
    const release: Release = {
      id: `r${counter}`,
      tool: TOOL,
      component: "web",
      build_id: build.id,
      commit: build.commit,
      image: `${REGISTRY}:${counter}`,
      image_digest: digest,
      trigger: build.trigger,
      status: "deploying",
      created_at: now,
      processes: ["web"],
      config: CONFIG,
      ...extra,
    };
    await store.createRelease(release);
    return release;
  }

  function deployer(): Deployer {
    const logger = memoryLogger();
    const applier = new KubernetesApplier(cluster.kubeConfig("slipway"), logger, {
      subject: SLIPWAY_TEST_SUBJECT,
    });
    const runtime = new KubernetesRuntime(
      applier,
      store,
      { render: OPTIONS, rolloutTimeoutS: 60, pollMs: 200 },
      logger,
    );
    return deployerOnKubernetes({
      store,
      cluster: applier,
      jobs: runtime,
      logs,
      logger,
      env: { envFor: () => Promise.resolve({ ...ENV }) },
      options: { render: OPTIONS, rolloutTimeoutS: 60, memoryMb: 256, pollMs: 200, releasePhaseTimeoutS: 30 },
    });
  }

  type Deployment = {
    spec: { template: { spec: { containers: { image: string }[] } } };
    status: { availableReplicas?: number; updatedReplicas?: number };
  };

  it("rolls a release out through the real Deployment controller, then replaces it with the next", async () => {
    const first = await newRelease();
    await deployer().deploy(first.id, new AbortController().signal);
    expect(await store.getRelease(first.id)).toMatchObject({ status: "live" });
    expect(await store.getRoute(TOOL)).toMatchObject({ release_id: first.id, host: `web.${NS}.svc` });
    const secret = await cluster.api<{ data: Record<string, string> }>(
      "GET",
      `/api/v1/namespaces/${NS}/secrets/web-env`,
    );
    expect(secret.data).toEqual({ API_KEY: Buffer.from(ENV.API_KEY).toString("base64") });

    const second = await newRelease();
    await deployer().deploy(second.id, new AbortController().signal);
    expect(await store.getRelease(second.id)).toMatchObject({ status: "live" });
    expect(await store.getRelease(first.id)).toMatchObject({ status: "superseded" });
    const deployment = await cluster.api<Deployment>("GET", `/apis/apps/v1/namespaces/${NS}/deployments/web`);
    expect(deployment.spec.template.spec.containers[0]?.image).toBe(`${REGISTRY}@${second.image_digest}`);
    expect(deployment.status).toMatchObject({ availableReplicas: 1, updatedReplicas: 1 });
    // The one-off component is not applied: a Job runs when applied.
    const jobs = await cluster.api<{ items: unknown[] }>("GET", `/apis/batch/v1/namespaces/${NS}/jobs`);
    expect(jobs.items).toEqual([]);
  }, 150_000);

  describe("slipway render --yaml", () => {
    let server: Server;
    let url: string;
    beforeAll(async () => {
      const urls = {
        publicUrl: "http://127.0.0.1:8080",
        webUrl: (t: string) => `http://${t}.toolforge.example/`,
      };
      const web = express();
      web.use((req, _res, next) => {
        req.principal = { kind: "admin" };
        next();
      });
      web.use(
        renderRouter(
          {
            store,
            tools: new ToolService(store, urls),
            urls,
            envvars: {
              list: () => Promise.resolve(Object.entries(ENV).map(([name, value]) => ({ name, value }))),
            },
            pullRegistry: "registry.example:5000",
          },
          OPTIONS,
        ),
      );
      web.use(errorHandler(memoryLogger()));
      server = await new Promise((resolve) => {
        const s = web.listen(0, "127.0.0.1", () => resolve(s));
      });
      const address = server.address();
      url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
    });
    afterAll(async () => {
      server?.closeAllConnections();
      await new Promise((r) => server?.close(r));
    });

    const render = async (args: string[]) =>
      run(process.execPath, [path.join(repoRoot, "dist/services/main.js"), "render", TOOL, ...args], {
        env: { ...process.env, SLIPWAY_URL: url, SLIPWAY_TOKEN: "sla_unused" },
        allowFailure: true,
      });

    it("prints YAML that kubectl diff and apply --dry-run=server accept, without Secret values or the one-off Job", async () => {
      if (!(await store.getRoute(TOOL)))
        await deployer().deploy((await newRelease()).id, new AbortController().signal);
      for (const args of [["--yaml"], []]) {
        const out = await render(args);
        expect(out.code, out.stderr).toBe(0);
        expect(out.stdout).not.toContain(ENV.API_KEY);
        expect(out.stdout).not.toContain(Buffer.from(ENV.API_KEY).toString("base64"));
        const diff = await cluster.kubectlRun("admin", ["diff", "-f", "-"], out.stdout);
        // 0: no differences, 1: differences; 2 or more: kubectl could not diff.
        expect(diff.code, `${diff.stderr}\n${out.stdout}`).toBeLessThan(2);
        const dry = await cluster.kubectlRun(
          "admin",
          ["apply", "--server-side", "--field-manager=slipway", "--dry-run=server", "-f", "-"],
          out.stdout,
        );
        expect(dry.code, dry.stderr).toBe(0);
        expect(dry.stdout).toContain("deployment.apps/web serverside-applied (server dry run)");
        const kinds = parseAllDocuments(out.stdout)
          .map((d) => d.toJS() as { kind?: string } | null)
          .map((d) => d?.kind);
        expect(kinds).not.toContain("Job");
        expect(out.stdout).toMatch(/# Secret web-env: left out/);
        expect(out.stdout).toMatch(/# Job migrate-r\d+: left out/);
      }
    }, 120_000);
  });

  describe("jobs run --wait", () => {
    let runner: JobRunner;
    let jobsApi: JobsApi;
    beforeAll(async () => {
      const logger = memoryLogger();
      const jobsStore = RedisJobsStore.create(client);
      const jobs = new JobService({
        jobs: jobsStore,
        store,
        imageOf: (release) => `${REGISTRY}@${release.image_digest}`,
        logger,
      });
      const kc = cluster.kubeConfig("slipway");
      const runtime = new KubernetesJobsRuntime(
        kc,
        new KubernetesApplier(kc, logger, { subject: SLIPWAY_TEST_SUBJECT }),
        store,
        { runner: "slipway-jobs-real", startTimeoutS: 30, pollMs: 200, ...OPTIONS },
        logger,
      );
      runner = new JobRunner({
        store: jobsStore,
        runtime,
        envFor: () => Promise.resolve({ ...ENV }),
        logger,
        options: { ...DEFAULT_RUNNER_OPTIONS, tickMs: 100, memoryMb: 256, owner: "real" },
      });
      await runner.start();
      jobsApi = await startJobsApi(jobs, TOOL, logger);
      if (!(await store.getRoute(TOOL))) {
        await deployer().deploy((await newRelease()).id, new AbortController().signal);
      }
    });
    afterAll(async () => {
      await runner?.close();
      await jobsApi?.close();
    });

    const jobsRun = async (name: string) =>
      run(
        process.execPath,
        [
          path.join(repoRoot, "dist/services/main.js"),
          "jobs",
          "run",
          name,
          "--command",
          `./${name}`,
          "--tool",
          TOOL,
          "--wait",
        ],
        {
          env: { ...process.env, SLIPWAY_URL: new URL(jobsApi.base).origin, SLIPWAY_TOKEN: "sla_unused" },
          allowFailure: true,
        },
      );

    it("prints the Job pod's output, read through pods/log, and its exit code", async () => {
      cluster.script(NS, "report-", { logs: ["report line 1", "report line 2"], exitCode: 3 });
      const out = await jobsRun("report");
      expect(out.stdout).toBe("report line 1\nreport line 2\n--- job report failed with exit code 3\n");
      expect(out.code).toBe(3);
    }, 90_000);

    it("says the output is incomplete when the pod's log cannot be read, instead of a clean success", async () => {
      cluster.script(NS, "lost-", { logStatus: 500, exitCode: 0 });
      const out = await jobsRun("lost");
      expect(out.code, out.stderr).toBe(0);
      const lines = out.stdout.trimEnd().split("\n");
      expect(lines[0]).toMatch(/^slipway: output incomplete: could not read the pod's log: .*500/);
      expect(lines.at(-1)).toMatch(
        /^--- job lost succeeded with exit code 0 \(output incomplete: could not read the pod's log: /,
      );
    }, 90_000);
  });
});
