import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesApplier } from "../services/adapters/kubernetes/applier.js";
import { KubernetesRuntime } from "../services/adapters/kubernetes/runtime.js";
import { JobQueue } from "../services/adapters/queue/bullmq.js";
import { RedisBuildLogs } from "../services/adapters/store/build-logs.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import { deployerOnKubernetes } from "../services/domain/releases/kubernetes-rollout.js";
import { ToolService } from "../services/domain/tools/tool-service.js";
import { memoryLogger } from "../services/platform/logger.js";
import { freePort } from "../services/platform/net.js";
import { kubeAssets, startKubeCluster, type KubeCluster } from "./helpers/kube-cluster.js";
import { startRedis } from "./helpers/redis.js";

// The operator's install (infra/kubernetes, through the overlay in test/fixtures/kubernetes-install)
// applied with `kubectl apply -k` to a real kube-apiserver v1.24, then Slipway deploying a tool with
// nothing but the token of the ServiceAccount that install made: no grant from the test itself.

const assets = kubeAssets();
if (assets.skip) console.warn(`kubernetes-install tests skipped: ${assets.skip}`);

const REPO = path.resolve(import.meta.dirname, "..");
const OVERLAY = path.resolve(import.meta.dirname, "fixtures/kubernetes-install");
const TOOL = "inst";
const NS = `tool-${TOOL}`;
const IMAGE = "registry.test.example:5000/slipway/slipway:2026.12.1";
const OPTIONS = {
  domain: "tools.test.example",
  ingressClassName: "nginx",
  ingressNamespace: "ingress-nginx",
};

type Item = { metadata: { name: string; labels?: Record<string, string> } };
type Pod = Item & { status?: { conditions?: { type: string; status: string }[] } };
type Deployment = Item & {
  spec: { template: { spec: { containers: { image: string }[]; serviceAccountName?: string } } };
  status: { availableReplicas?: number };
};
type NetworkPolicy = Item & {
  spec: { ingress?: { from?: { namespaceSelector?: { matchLabels?: Record<string, string> } }[] }[] };
};

describe.skipIf(assets.skip !== undefined)("the install in infra/kubernetes on a real API server", () => {
  let cluster: KubeCluster;
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let firstApply: { code: number; stdout: string; stderr: string };
  let sa: { kc: KubeConfig; token: string; file: string } | undefined;

  beforeAll(async () => {
    [cluster, redis] = await Promise.all([startKubeCluster(), startRedis()]);
    firstApply = await cluster.kubectlRun("admin", ["apply", "-k", OVERLAY]);
    // What docs/operating.md has the operator do next: the Secret the install refers to, made outside it.
    await cluster.kubectlRun("admin", [
      "create",
      "secret",
      "generic",
      "slipway",
      "--namespace=slipway",
      `--from-literal=redis-url=${redis.url}`,
      "--from-literal=admin-token=sla_test-admin-token",
      "--from-literal=builder-secret=slb_test-builder-secret",
      `--from-literal=encryption-key=${Buffer.alloc(32, 7).toString("base64")}`,
      "--from-literal=registry-password=test-password",
    ]);
  }, 150_000);

  afterAll(async () => {
    await cluster?.stop();
    await redis?.stop();
  });

  it("applies with kubectl apply -k, and a second apply changes nothing", async () => {
    expect(firstApply.code, firstApply.stderr).toBe(0);
    for (const made of [
      "namespace/slipway created",
      "serviceaccount/slipway created",
      "clusterrole.rbac.authorization.k8s.io/slipway created",
      "clusterrolebinding.rbac.authorization.k8s.io/slipway created",
      "deployment.apps/slipway-api created",
      "deployment.apps/slipway-deployer created",
      "service/slipway-api created",
      "ingress.networking.k8s.io/slipway-api created",
      "networkpolicy.networking.k8s.io/slipway-api-from-ingress created",
      "networkpolicy.networking.k8s.io/slipway-deny-ingress created",
    ]) {
      expect(firstApply.stdout).toContain(made);
    }
    const again = await cluster.kubectlRun("admin", ["apply", "-k", OVERLAY]);
    expect(again.code, again.stderr).toBe(0);
    const lines = again.stdout.trim().split("\n");
    expect(lines.length).toBe(firstApply.stdout.trim().split("\n").length);
    expect(lines.filter((l) => !l.endsWith(" unchanged"))).toEqual([]);
  }, 60_000);

  it("runs the api and deployer roles as the slipway ServiceAccount, with the overlay's image and config", async () => {
    for (const role of ["api", "deployer"]) {
      const d = await cluster.api<Deployment>(
        "GET",
        `/apis/apps/v1/namespaces/slipway/deployments/slipway-${role}`,
      );
      expect(d.spec.template.spec.containers[0]?.image).toBe(IMAGE);
      expect(d.spec.template.spec.serviceAccountName).toBe("slipway");
    }
    const configs = await cluster.api<{ items: (Item & { data: Record<string, string> })[] }>(
      "GET",
      "/api/v1/namespaces/slipway/configmaps",
    );
    const config = configs.items.find((c) => c.metadata.name.startsWith("slipway-config-"));
    expect(config?.data).toMatchObject({
      SLIPWAY_RUNTIME: "kubernetes",
      SLIPWAY_PUBLIC_URL: "https://slipway.test.example",
      SLIPWAY_INGRESS_NAMESPACE: "ingress-nginx",
    });
    const ingress = await cluster.api<{
      spec: { rules: { host: string; http: { paths: { backend: { service: { name: string } } }[] } }[] };
    }>("GET", "/apis/networking.k8s.io/v1/namespaces/slipway/ingresses/slipway-api");
    expect(ingress.spec.rules[0]?.host).toBe("slipway.test.example");
    expect(ingress.spec.rules[0]?.http.paths[0]?.backend.service.name).toBe("slipway-api");
    const policy = await cluster.api<NetworkPolicy>(
      "GET",
      "/apis/networking.k8s.io/v1/namespaces/slipway/networkpolicies/slipway-api-from-ingress",
    );
    expect(policy.spec.ingress?.[0]?.from?.[0]?.namespaceSelector?.matchLabels).toEqual({
      "kubernetes.io/metadata.name": config?.data.SLIPWAY_INGRESS_NAMESPACE,
    });
    // The namespace enforces Pod Security "restricted": a pod that ran as root or kept capabilities
    // would be refused by admission, and its ReplicaSet would have made none.
    await until(async () => {
      const pods = await cluster.api<{ items: Pod[] }>("GET", "/api/v1/namespaces/slipway/pods");
      const roles = new Set(pods.items.map((p) => p.metadata.labels?.["app.kubernetes.io/component"]));
      return roles.has("api") && roles.has("deployer");
    }, "pods of both slipway-api and slipway-deployer (refused by Pod Security admission? see the ReplicaSets' events)");
  }, 60_000);

  it("lets Slipway, holding only the ServiceAccount's token, deploy a tool", async () => {
    sa = await serviceAccountKubeConfig(cluster);
    const { kc, token } = sa;
    const review = await cluster.api<{ status: { user?: { username?: string } } }>(
      "POST",
      "/apis/authentication.k8s.io/v1/tokenreviews",
      { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } },
    );
    expect(review.status.user?.username).toBe("system:serviceaccount:slipway:slipway");
    const store = RedisStore.create(redis.url);
    const client = new Redis(redis.url);
    try {
      await new ToolService(store, {
        publicUrl: "https://slipway.test.example",
        webUrl: (t) => `https://${t}.${OPTIONS.domain}/`,
      }).create(TOOL);
      await newRelease(store, 1);
      const logger = memoryLogger();
      const applier = new KubernetesApplier(kc, logger, {
        subject: { kind: "ServiceAccount", namespace: "slipway", name: "slipway" },
      });
      const deployer = deployerOnKubernetes({
        store,
        cluster: applier,
        jobs: new KubernetesRuntime(
          applier,
          store,
          { render: OPTIONS, rolloutTimeoutS: 60, pollMs: 200 },
          logger,
        ),
        logs: RedisBuildLogs.create(client),
        logger,
        env: { envFor: () => Promise.resolve({}) },
        options: {
          render: OPTIONS,
          rolloutTimeoutS: 60,
          memoryMb: 256,
          pollMs: 200,
          releasePhaseTimeoutS: 30,
        },
      });
      await deployer.deploy("r1", new AbortController().signal);

      expect(await store.getRelease("r1")).toMatchObject({ status: "live" });
      const web = await cluster.api<Deployment>("GET", `/apis/apps/v1/namespaces/${NS}/deployments/web`);
      expect(web.status.availableReplicas).toBe(1);
      await cluster.api("GET", `/api/v1/namespaces/${NS}/services/web`);
      const ingresses = await cluster.api<{ items: (Item & { spec: { rules: { host: string }[] } })[] }>(
        "GET",
        `/apis/networking.k8s.io/v1/namespaces/${NS}/ingresses`,
      );
      expect(ingresses.items.flatMap((i) => i.spec.rules.map((r) => r.host))).toContain(
        `${TOOL}.${OPTIONS.domain}`,
      );
      const policies = await cluster.api<{ items: NetworkPolicy[] }>(
        "GET",
        `/apis/networking.k8s.io/v1/namespaces/${NS}/networkpolicies`,
      );
      const admitted = policies.items.flatMap((p) =>
        (p.spec.ingress ?? []).flatMap((rule) =>
          (rule.from ?? []).map((f) => f.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"]),
        ),
      );
      expect(admitted).toContain("ingress-nginx");
      const pods = await cluster.api<{ items: Pod[] }>("GET", `/api/v1/namespaces/${NS}/pods`);
      expect(pods.items.length).toBeGreaterThan(0);
      for (const pod of pods.items) {
        expect(pod.status?.conditions?.find((c) => c.type === "Ready")?.status, pod.metadata.name).toBe(
          "True",
        );
      }
    } finally {
      await store.close();
      client.disconnect();
    }
  }, 150_000);

  it("runs the deployer role with the install's ConfigMap, Secret and ServiceAccount, and it deploys a queued release", async () => {
    const role = await startRole(cluster, "deployer", sa?.file);
    const store = RedisStore.create(redis.url);
    const queue = JobQueue.create(redis.url);
    try {
      await newRelease(store, 2);
      await queue.enqueue("deploy", { build_id: "b2", release_id: "r2" }, "r2");
      await until(
        async () => {
          if (role.child.exitCode !== null) throw new Error(`the deployer role exited:\n${role.output()}`);
          return (await store.getRelease("r2"))?.status === "live";
        },
        "release r2 to go live",
        600,
      );
      const web = await cluster.api<Deployment>("GET", `/apis/apps/v1/namespaces/${NS}/deployments/web`);
      expect(web.spec.template.spec.containers[0]?.image).toBe(
        `registry.test.example:5000/tool-inst/web@sha256:${"2".repeat(64)}`,
      );
      expect(await store.getRelease("r1")).toMatchObject({ status: "superseded" });
    } finally {
      await role.stop();
      await queue.close();
      await store.close();
    }
  }, 180_000);

  it("runs the api role with the same ConfigMap and Secret: healthz, the Secret's admin token, the cluster read as the ServiceAccount", async () => {
    const port = await freePort();
    const role = await startRole(cluster, "api", sa?.file, {
      SLIPWAY_HOST: "127.0.0.1",
      SLIPWAY_PORT: String(port),
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      await until(
        async () => {
          if (role.child.exitCode !== null) throw new Error(`the api role exited:\n${role.output()}`);
          return (await fetch(`${url}/api/v1/healthz`).catch(() => undefined))?.status === 200;
        },
        "the api role's /api/v1/healthz",
        600,
      );
      const admin = { authorization: `Bearer ${role.secret("admin-token")}` };
      const tools = (await (await fetch(`${url}/api/v1/tools`, { headers: admin })).json()) as {
        name: string;
      }[];
      expect(tools.map((t) => t.name)).toContain(TOOL);
      // The webservice's status is read from its Deployment, with the ServiceAccount's rights.
      const status = await fetch(`${url}/api/v1/tools/${TOOL}/webservice`, { headers: admin });
      expect(status.status, await status.clone().text()).toBe(200);
      expect(JSON.stringify(await status.json())).toContain("r2");
    } finally {
      await role.stop();
    }
  }, 180_000);
});

interface RoleProcess {
  readonly child: ChildProcess;
  output(): string;
  /** A value of Secret `slipway`. */
  secret(key: string): string;
  stop(): Promise<void>;
}

/**
 * `slipway server --role <role>` as its pod runs it: the applied ConfigMap's variables, the Secret's
 * keys as files (a temp home stands for /var/lib/slipway), and the ServiceAccount's token (in the pod,
 * client-node finds the mounted token itself; here the same token is in a kubeconfig file).
 */
async function startRole(
  cluster: KubeCluster,
  role: "api" | "deployer",
  kubeconfig: string | undefined,
  env: Record<string, string> = {},
): Promise<RoleProcess> {
  if (!kubeconfig) throw new Error("an earlier test makes the ServiceAccount's kubeconfig");
  const configs = await cluster.api<{ items: (Item & { data: Record<string, string> })[] }>(
    "GET",
    "/api/v1/namespaces/slipway/configmaps",
  );
  const config = configs.items.find((c) => c.metadata.name.startsWith("slipway-config-"))?.data ?? {};
  const secret = await cluster.api<{ data: Record<string, string> }>(
    "GET",
    "/api/v1/namespaces/slipway/secrets/slipway",
  );
  const value = (key: string) => Buffer.from(secret.data[key] ?? "", "base64").toString();
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-install-"));
  const home = path.join(dir, "home");
  await mkdir(home, { mode: 0o700 });
  for (const key of ["admin-token", "builder-secret", "encryption-key"]) {
    await writeFile(path.join(home, key), value(key), { mode: 0o600 });
  }
  await writeFile(path.join(dir, "registry-password"), value("registry-password"), { mode: 0o600 });
  const child = spawn(
    process.execPath,
    [path.join(REPO, "dist/services/main.js"), "server", "--role", role],
    {
      env: {
        PATH: process.env.PATH,
        ...config,
        REDIS_URL: value("redis-url"),
        SLIPWAY_HOME: home,
        SLIPWAY_REGISTRY_PASSWORD_FILE: path.join(dir, "registry-password"),
        SLIPWAY_KUBECONFIG: kubeconfig,
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise((r) => child.once("exit", r));
  return {
    child,
    output: () => output,
    secret: value,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const CONFIG = parseComponentsConfig(
  "config_version: v1beta1\ncomponents:\n  web:\n    run:\n      command: web\n      port: 8000\n      publish: true\n",
  "slipway.yaml",
);

/** Build `b<n>` and its release `r<n>` of the tool, waiting to be deployed, as the builder leaves them. */
async function newRelease(store: RedisStore, n: number): Promise<void> {
  const now = new Date(Date.now() + n).toISOString();
  const trigger = { kind: "git_push", ref: "refs/heads/main" } as const;
  const commit = String(n).repeat(40).slice(0, 40);
  await store.createBuild({
    id: `b${n}`,
    tool: TOOL,
    component: "web",
    commit,
    ref: "refs/heads/main",
    source_url: "https://slipway.test.example/git/inst.git",
    trigger,
    status: "success",
    created_at: now,
  });
  await store.createRelease({
    id: `r${n}`,
    tool: TOOL,
    component: "web",
    build_id: `b${n}`,
    commit,
    image: `registry.test.example:5000/tool-inst/web:${n}`,
    image_digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
    trigger,
    status: "deploying",
    created_at: now,
    processes: ["web"],
    config: CONFIG,
  });
}

/**
 * A kubeconfig holding only the `slipway` ServiceAccount's token. On 1.24 a token Secret annotated with
 * the account's name is filled in by the controller-manager's token controller.
 */
async function serviceAccountKubeConfig(
  cluster: KubeCluster,
): Promise<{ kc: KubeConfig; token: string; file: string }> {
  await cluster.api("POST", "/api/v1/namespaces/slipway/secrets", {
    metadata: {
      name: "slipway-test-token",
      annotations: { "kubernetes.io/service-account.name": "slipway" },
    },
    type: "kubernetes.io/service-account-token",
  });
  let token = "";
  await until(async () => {
    const secret = await cluster.api<{ data?: { token?: string } }>(
      "GET",
      "/api/v1/namespaces/slipway/secrets/slipway-test-token",
    );
    token = Buffer.from(secret.data?.token ?? "", "base64").toString();
    return token !== "";
  }, "the ServiceAccount token");
  const admin = JSON.parse(await readFile(cluster.kubeconfigPath("admin"), "utf8")) as {
    clusters: { cluster: { server: string; "certificate-authority": string } }[];
  };
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: "test",
        server: admin.clusters[0]!.cluster.server,
        caFile: admin.clusters[0]!.cluster["certificate-authority"],
        skipTLSVerify: false,
      },
    ],
    users: [{ name: "slipway-sa", token }],
    contexts: [{ name: "sa", cluster: "test", user: "slipway-sa" }],
    currentContext: "sa",
  });
  const file = path.join(cluster.dir, "service-account.kubeconfig");
  await writeFile(file, kc.exportConfig(), { mode: 0o600 });
  return { kc, token, file };
}

async function until(check: () => Promise<boolean>, what: string, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`gave up waiting for ${what}`);
}
