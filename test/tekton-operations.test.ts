import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TektonBackend } from "../services/adapters/tekton/backend.js";
import { runName, type TektonBuildSettings } from "../services/adapters/tekton/pipeline-run.js";
import { TektonBuildSandboxes } from "../services/adapters/tekton/sandboxes.js";
import { BuildPipeline } from "../services/domain/pipeline/build-pipeline.js";
import { BuildRecovery } from "../services/domain/pipeline/build-recovery.js";
import { memoryLogger } from "../services/platform/logger.js";
import type { BuildRequest } from "../services/ports/build-backend.js";
import type { BuilderRegistry } from "../services/ports/builders.js";
import type { BuildLogs } from "../services/ports/logs.js";
import type { Enqueuer } from "../services/ports/queue.js";
import { MemoryBuilders } from "./fakes/memory-builders.js";
import { MemoryStore } from "./fakes/memory-store.js";
import { grantSlipway, kubeAssets, startKubeCluster, type KubeCluster } from "./helpers/kube-cluster.js";
import { TektonStandIn, installTektonCrds, queuedPush, type RunPlay } from "./helpers/tekton-controller.js";

// The Tekton build backend as it runs in operation, against a real kube-apiserver (RBAC on) with
// Tekton's CRDs: with exactly the rights of infra/kubernetes/builds (applied with `kubectl apply -k`),
// and after the builder that followed a PipelineRun died (build recovery at the next builder's start).
// test/helpers/tekton-controller.ts plays Tekton's controller.

const assets = kubeAssets();
if (assets.skip) console.warn(`tekton-operations tests skipped: ${assets.skip}`);

const repoRoot = path.resolve(import.meta.dirname, "..");
const BUILDS_DIR = path.join(repoRoot, "infra/kubernetes/builds");
const NS = "slipway-builds";
const DIGEST = `sha256:${"d".repeat(64)}`;
const SETTINGS: TektonBuildSettings = {
  namespace: NS,
  registry: "harbor.example",
  buildImage: "harbor.example/slipway/build:bookworm",
  runImage: "harbor.example/slipway/run:bookworm",
  fetchImage: "harbor.example/slipway/git:2",
  pushSecret: "registry-push",
  memoryMb: 1024,
  cpus: 1,
  timeoutS: 600,
  cacheSize: "1Gi",
  workspaceSize: "1Gi",
  uid: 1000,
  gid: 1000,
};
const SUCCESS: RunPlay = {
  results: {
    "export/image-digest": DIGEST,
    "export/image": "harbor.example/tool-ops/web:x",
    "build/processes": JSON.stringify([{ type: "web", buildpackId: "slipway/procfile" }]),
  },
};

/**
 * A TCP relay to the API server that can freeze: every connection through it, open or new, then hangs
 * with nothing answered, as the network sees a builder process that was killed. `close` drops them.
 */
async function freezableRelay(target: URL) {
  const pairs: [net.Socket, net.Socket | undefined][] = [];
  let frozen = false;
  const server = net.createServer((client) => {
    client.on("error", () => undefined);
    if (frozen) return void pairs.push([client, undefined]);
    const upstream = net.connect(Number(target.port), target.hostname);
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() {
      frozen = true;
      for (const [client, upstream] of pairs) {
        client.unpipe();
        upstream?.unpipe();
        client.pause();
        upstream?.pause();
      }
    },
    async close() {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream?.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

function through(kc: KubeConfig, port: number): KubeConfig {
  const relayed = new KubeConfig();
  relayed.loadFromOptions({
    clusters: kc.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${port}` })),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return relayed;
}

describe.skipIf(assets.skip !== undefined)("Tekton builds in operation on a real API server", () => {
  let cluster: KubeCluster;
  let standIn: TektonStandIn;
  // Each run of a name takes the next play: a re-run of a build (same run name) plays the second.
  const plays = new Map<string, RunPlay[]>();

  beforeAll(async () => {
    cluster = await startKubeCluster({ audit: true });
    await installTektonCrds(cluster);
    await grantSlipway(cluster);
    const applied = await cluster.kubectlRun("admin", ["apply", "-k", BUILDS_DIR]);
    if (applied.code !== 0) throw new Error(`kubectl apply -k ${BUILDS_DIR}: ${applied.stderr}`);
    // The installed RoleBinding names the ServiceAccount; the harness authenticates Slipway as User slipway.
    await cluster.api("POST", `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, {
      metadata: { name: "slipway-builds-test-user" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "slipway-builds" },
      subjects: [{ kind: "User", name: "slipway", apiGroup: "rbac.authorization.k8s.io" }],
    });
    // The operator's: the export Task's push credential, and another namespace's Secret.
    await cluster.api("POST", `/api/v1/namespaces/${NS}/secrets`, {
      metadata: { name: "registry-push" },
      stringData: { "config.json": "{}" },
    });
    await cluster.api("POST", "/api/v1/namespaces", { metadata: { name: "elsewhere" } });
    await cluster.api("POST", "/api/v1/namespaces/elsewhere/secrets", {
      metadata: { name: "database" },
      stringData: { password: "not-slipways" },
    });
    standIn = new TektonStandIn(cluster, NS, (run) => plays.get(run.metadata.name)?.shift() ?? {});
    standIn.start();
  }, 180_000);

  afterAll(async () => {
    await standIn?.stop();
    await cluster?.stop();
  });

  const options = (kc: KubeConfig, extra: { builder?: string } = {}) => ({
    ...SETTINGS,
    ...extra,
    pipelinesDir: path.join(repoRoot, "pipelines"),
    pollMs: 150,
    credential: () => Promise.resolve({ username: "deploy", password: "t0ken" }),
  });

  it("kubectl apply -k infra/kubernetes/builds makes the builds namespace restricted, and its Role is the one the install applies", async () => {
    const ns = await cluster.api<{ metadata: { labels: Record<string, string> } }>(
      "GET",
      `/api/v1/namespaces/${NS}`,
    );
    expect(ns.metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
    const binding = await cluster.api<{ subjects: unknown[] }>(
      "GET",
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/slipway-builds`,
    );
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "slipway", namespace: "slipway" }]);
    // The whole install includes it: a dry run of infra/kubernetes lists the builds objects too.
    const whole = await cluster.kubectlRun("admin", [
      "apply",
      "-k",
      path.join(repoRoot, "infra/kubernetes"),
      "--dry-run=server",
    ]);
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stdout).toContain("role.rbac.authorization.k8s.io/slipway-builds");
    expect(whole.stdout).toContain("namespace/slipway-builds");
  }, 60_000);

  it("as Slipway's account with only the builds Role: applies pipelines/, runs a build with its credential, and nothing is refused", async () => {
    const backend = await TektonBackend.start(
      cluster.kubeConfig("slipway"),
      options(cluster.kubeConfig("slipway")),
      memoryLogger(),
    );
    const req: BuildRequest = {
      buildId: "01jrbac0001",
      tool: "ops",
      component: "web",
      commit: "a".repeat(40),
      ref: "refs/heads/main",
      sourceUrl: "https://forge.example/ops.git",
      appDir: "/nonexistent",
      workDir: "/nonexistent",
      sourceDateEpoch: 1_700_000_000,
      noCache: false,
      repository: "tool-ops/web",
      tag: "a".repeat(40),
    };
    plays.set(runName(req.buildId), [SUCCESS]);
    const lines: string[] = [];
    const image = await backend.build(req, {
      onLog: (l) => lines.push(l),
      onPhase: () => undefined,
      signal: new AbortController().signal,
    });
    expect(image.digest).toBe(DIGEST);
    expect(lines).toContain("export/export: ok");
    expect(standIn.secretsSeen.get(runName(req.buildId))).toEqual([
      `${runName(req.buildId)}-source`,
      "registry-push",
    ]);
    const requests = await cluster.requests();
    const refused = requests.filter((r) => r.code === 403);
    expect(refused, JSON.stringify(refused)).toEqual([]);
    // Every request about objects was about the builds namespace (API discovery aside).
    const objects = requests.filter(
      (r) => r.path.includes("/namespaces/") || r.verb === "list" || r.verb === "watch",
    );
    expect(objects.length).toBeGreaterThan(5);
    expect(objects.filter((r) => r.namespace !== NS)).toEqual([]);
  }, 90_000);

  it("cannot read Secrets of another namespace, nor read any Secret in the builds namespace", async () => {
    const canI = async (...args: string[]) =>
      (await cluster.kubectlRun("slipway", ["auth", "can-i", ...args])).stdout.trim();
    expect(await canI("get", "secrets", "-n", "elsewhere")).toBe("no");
    expect(await canI("get", "secrets", "-n", NS)).toBe("no");
    expect(await canI("list", "secrets", "--all-namespaces")).toBe("no");
    expect(await canI("list", "pipelineruns.tekton.dev", "--all-namespaces")).toBe("no");
    expect(await canI("create", "pipelineruns.tekton.dev", "-n", "elsewhere")).toBe("no");
    // What it may do, so the answers above are the Role's and not a cluster refusing everyone.
    expect(await canI("create", "pipelineruns.tekton.dev", "-n", NS)).toBe("yes");
    expect(await canI("delete", "secrets", "-n", NS)).toBe("yes");
    const read = await cluster.kubectlRun("slipway", ["get", "secret", "database", "-n", "elsewhere"]);
    expect(read.code).not.toBe(0);
    expect(read.stderr).toMatch(/forbidden/);
    expect(read.stdout).not.toContain("not-slipways");
  }, 60_000);

  it("a builder killed mid-run: the next builder cancels and deletes its PipelineRun and source Secret, re-runs the build once, and the build ends with the re-run's image", async () => {
    const store = new MemoryStore();
    const logLines: string[] = [];
    const logs = {
      append: (_id: string, line: string) => {
        logLines.push(line);
        return Promise.resolve();
      },
    } as unknown as BuildLogs;
    const queued: string[] = [];
    const queue: Enqueuer = {
      enqueue: (name, _payload, jobId) => {
        queued.push(`${name}:${jobId}`);
        return Promise.resolve();
      },
      removeWaiting: () => Promise.resolve(false),
    };
    const builders = new MemoryBuilders();
    const work = await mkdtemp(path.join(os.tmpdir(), "slipway-tekton-ops-"));
    const id = await queuedPush(store, "ops", "e".repeat(40));
    const name = runName(id);
    plays.set(name, [{ hangAt: "build/build" }, SUCCESS]);
    const builderOf = async (
      registry: BuilderRegistry,
      kc: KubeConfig,
    ): Promise<{ pipeline: BuildPipeline; recovery: BuildRecovery }> => {
      const recovery = new BuildRecovery({
        store,
        logs,
        builders: registry,
        sandboxes: new TektonBuildSandboxes(() => kc, NS),
        queue,
        logger: memoryLogger(),
      });
      const backend = await TektonBackend.start(kc, options(kc, { builder: registry.id }), memoryLogger());
      const pipeline = new BuildPipeline({
        store,
        logs,
        queue,
        fetcher: { fetch: (r) => Promise.resolve({ commit: r.commit, commitTime: 1_700_000_000 }) },
        backend,
        builders: registry,
        recovery,
        workRoot: work,
        logger: memoryLogger(),
        timeoutS: 300,
        cancelPollMs: 200,
      });
      return { pipeline, recovery };
    };

    // Builder A reaches the cluster through a relay, so that killing it cuts it off mid-request.
    const relay = await freezableRelay(new URL(cluster.url));
    const a = builders.start();
    const builderA = await builderOf(a, through(cluster.kubeConfig("slipway"), relay.port));
    const runA = builderA.pipeline.run(id, { signal: new AbortController().signal, finalAttempt: true });
    for (let i = 0; i < 300 && (await store.getBuild(id))?.phase !== "build"; i++)
      await new Promise((r) => setTimeout(r, 100));
    expect((await store.getBuild(id))?.phase).toBe("build");
    const first = await cluster.api<{ metadata: { uid: string; labels: Record<string, string> } }>(
      "GET",
      `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns/${name}`,
    );
    expect(first.metadata.labels["slipway.dev/builder"]).toBe(a.id);
    await cluster.api("GET", `/api/v1/namespaces/${NS}/secrets/${name}-source`);

    // kill -9: nothing more reaches the cluster from A, and its heartbeat is gone.
    relay.freeze();
    await a.close();

    const b = builders.start();
    const builderB = await builderOf(b, cluster.kubeConfig("slipway"));
    // Builder start: the sandbox sweep leaves a run whose build still runs on its (dead) builder to recovery...
    await builderB.recovery.sweepSandboxes();
    const still = await cluster.api<{ metadata: { uid: string } }>(
      "GET",
      `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns/${name}`,
    );
    expect(still.metadata.uid).toBe(first.metadata.uid);
    // ...which queues one recovery job for it, and the job's run takes the build over.
    expect(await builderB.recovery.sweep()).toBe(1);
    expect(queued).toEqual([`build:${id}-r1`]);
    await builderB.pipeline.run(id, { signal: new AbortController().signal, finalAttempt: true });

    const build = (await store.getBuild(id))!;
    expect(build, build.reason).toMatchObject({
      status: "deploying",
      image_digest: DIGEST,
      restarts: 1,
      builder: b.id,
    });
    expect(logLines).toContain(
      `===> RESTARTING: the builder restarted during phase build; building ${"e".repeat(40)} again from the start`,
    );
    // Exactly two runs of the build, one after the other: A's, deleted, and B's under the same name.
    const runs = standIn.played.filter((p) => p.name === name);
    expect(runs).toHaveLength(2);
    const now = await cluster.api<{ metadata: { uid: string; labels: Record<string, string> } }>(
      "GET",
      `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns/${name}`,
    );
    expect(now.metadata.uid).toBe(runs[1]!.uid);
    expect(now.metadata.uid).not.toBe(first.metadata.uid);
    expect(now.metadata.labels["slipway.dev/builder"]).toBe(b.id);
    // A's run was cancelled, then deleted, by Slipway's account.
    const onRun = (await cluster.requests())
      .filter((r) => r.path.endsWith(`/pipelineruns/${name}`) && r.verb !== "get")
      .map((r) => `${r.verb} ${r.code ?? ""}`);
    expect(onRun).toContain("patch 200");
    expect(
      onRun.some((r) => /^delete 20[02]$/.test(r)),
      onRun.join(", "),
    ).toBe(true);
    // The source Secret is gone again once B's run ended.
    await expect(cluster.api("GET", `/api/v1/namespaces/${NS}/secrets/${name}-source`)).rejects.toThrow(
      / 404 /,
    );

    // A, cut off, comes back to nothing: its run stops without writing over B's record.
    await relay.close();
    await runA;
    expect(await store.getBuild(id)).toMatchObject({ status: "deploying", image_digest: DIGEST });
    expect(queued.filter((j) => j.startsWith("deploy:"))).toHaveLength(1);
    await rm(work, { recursive: true, force: true });
  }, 180_000);

  it("at builder start, a PipelineRun whose build has ended is cancelled and deleted with its source Secret", async () => {
    const store = new MemoryStore();
    const id = await queuedPush(store, "gone", "f".repeat(40));
    const name = runName(id);
    // As a builder that died after `build cancel` ended the record left them.
    await store.updateBuild(id, { status: "cancelled", reason: "cancelled by request" });
    plays.set(name, [{ hangAt: "fetch/fetch" }]);
    const labels = {
      "app.kubernetes.io/managed-by": "slipway",
      "slipway.dev/build": id,
      "slipway.dev/builder": "builder-long-gone",
    };
    await cluster.api("POST", `/api/v1/namespaces/${NS}/secrets`, {
      metadata: { name: `${name}-source` },
      stringData: { username: "deploy", password: "t0ken" },
    });
    await cluster.api("POST", `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns`, {
      apiVersion: "tekton.dev/v1",
      kind: "PipelineRun",
      metadata: { name, labels },
      spec: { pipelineRef: { name: "slipway-build" }, params: [] },
    });
    // Unrelated runs in the namespace (not Slipway's) are left alone.
    await cluster.api("POST", `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns`, {
      apiVersion: "tekton.dev/v1",
      kind: "PipelineRun",
      metadata: { name: "someone-elses" },
      spec: { pipelineRef: { name: "slipway-build" }, params: [] },
    });
    const recovery = new BuildRecovery({
      store,
      logs: { append: () => Promise.resolve() } as unknown as BuildLogs,
      builders: new MemoryBuilders().start(),
      sandboxes: new TektonBuildSandboxes(() => cluster.kubeConfig("slipway"), NS),
      queue: { enqueue: () => Promise.resolve(), removeWaiting: () => Promise.resolve(false) },
      logger: memoryLogger(),
    });
    await recovery.sweepSandboxes();
    await expect(
      cluster.api("GET", `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns/${name}`),
    ).rejects.toThrow(/ 404 /);
    await expect(cluster.api("GET", `/api/v1/namespaces/${NS}/secrets/${name}-source`)).rejects.toThrow(
      / 404 /,
    );
    await cluster.api("GET", `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns/someone-elses`);
    expect((await store.getBuild(id))?.status).toBe("cancelled");
  }, 90_000);
});
