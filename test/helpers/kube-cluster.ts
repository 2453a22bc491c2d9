import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { readFileSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import { freePort } from "../../services/platform/net.js";

// A real Kubernetes v1.24 control plane for tests, as controller-runtime's envtest runs one: Debian's
// etcd, kube-apiserver (RBAC, token auth, admission as on a cluster), kube-controller-manager and
// kube-scheduler on random loopback ports in a temp dir. There is no kubelet and no container runtime;
// a stand-in kubelet (a loop in this process) plays one Node: it marks pods scheduled to it Running and
// Ready, ends Job pods with the exit code a test chose, finishes deletions, and serves the container
// logs the apiserver's `pods/log` proxies to, over HTTPS on the Node's InternalIP. See
// /work/shared/k8s/README.md (or wherever SLIPWAY_TEST_KUBE_ASSETS points) for the flags that work.

const run = promisify(execFile);

/** Where the decompressed binaries are cached across runs (one unpack per machine). */
export const KUBE_CACHE = process.env.SLIPWAY_TEST_KUBE_CACHE ?? "/var/tmp/slipway-kube-assets/v1.24.0";
const BINARIES = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"] as const;
const NODE_NAME = "stand-in-node";

/**
 * The directory of the unpacked binaries, or why the real-cluster tests cannot run here. The
 * compressed binaries come from `SLIPWAY_TEST_KUBE_ASSETS` (`.ci/run` points it at `../shared/k8s`
 * when that exists); a machine that unpacked them once keeps them in KUBE_CACHE.
 */
export function kubeAssets(): { dir: string; skip?: undefined } | { dir?: undefined; skip: string } {
  if (!existsSync("/usr/bin/etcd") && !existsSync("/usr/local/bin/etcd")) {
    return { skip: "no etcd binary: apt-get install etcd-server" };
  }
  if (BINARIES.every((b) => existsSync(path.join(KUBE_CACHE, b)))) return { dir: KUBE_CACHE };
  const source = process.env.SLIPWAY_TEST_KUBE_ASSETS;
  if (!source) {
    return {
      skip: `no Kubernetes binaries: set SLIPWAY_TEST_KUBE_ASSETS to the directory of kube-apiserver.xz & co. (or unpack them into ${KUBE_CACHE})`,
    };
  }
  if (!BINARIES.every((b) => existsSync(path.join(source, `${b}.xz`)))) {
    return { skip: `SLIPWAY_TEST_KUBE_ASSETS=${source} lacks ${BINARIES.map((b) => `${b}.xz`).join(", ")}` };
  }
  return { dir: KUBE_CACHE };
}

/** Unpacks the binaries into KUBE_CACHE unless there; a temp dir then a rename, so a parallel run never sees half a file. */
async function unpack(): Promise<string> {
  if (BINARIES.every((b) => existsSync(path.join(KUBE_CACHE, b)))) return KUBE_CACHE;
  const source = process.env.SLIPWAY_TEST_KUBE_ASSETS!;
  await mkdir(path.dirname(KUBE_CACHE), { recursive: true });
  const tmp = await mkdtemp(`${KUBE_CACHE}.unpack-`);
  for (const b of BINARIES) {
    await run("sh", [
      "-c",
      `xz -dc "$1" > "$2" && chmod 755 "$2"`,
      "sh",
      path.join(source, `${b}.xz`),
      path.join(tmp, b),
    ]);
  }
  if (existsSync(path.join(source, "tekton-crds.yaml"))) {
    await run("cp", [path.join(source, "tekton-crds.yaml"), tmp]);
  }
  await rename(tmp, KUBE_CACHE).catch(async (error: unknown) => {
    await rm(tmp, { recursive: true, force: true });
    if (!BINARIES.every((b) => existsSync(path.join(KUBE_CACHE, b)))) throw error;
  });
  return KUBE_CACHE;
}

/** What the stand-in kubelet does with one pod's container. */
export interface PodScript {
  /** Exit code of a Job pod's container (default 0); web pods keep running. */
  readonly exitCode?: number;
  /** Lines the container "printed" (served by pods/log). */
  readonly logs?: readonly string[];
  /** Lines by container name, for pods whose containers print different things (Tekton steps). */
  readonly containerLogs?: Readonly<Record<string, readonly string[]>>;
  /** pods/log answers this HTTP status instead (e.g. 500), to play a kubelet that cannot read the log. */
  readonly logStatus?: number;
  /** A web pod that never becomes Ready. */
  readonly neverReady?: boolean;
  /**
   * The container never runs: it waits with this reason (e.g. ImagePullBackOff), the pod stays
   * Pending, a Job's pod never ends. With `lastExit` the pod is Running and its container restarts
   * (CrashLoopBackOff), as a kubelet reports a container that keeps crashing.
   */
  readonly waiting?: { readonly reason: string; readonly message: string };
  /**
   * A Job's pod whose container keeps running (a worker, or a run that has not ended) until the pod
   * is deleted; its log lines keep one timestamp, so a reader that follows again sees them once.
   */
  readonly running?: boolean;
  /** With `waiting`: the exit of the container's previous run and how often it restarted. */
  readonly lastExit?: { readonly exitCode: number; readonly reason: string; readonly restarts: number };
}

export interface KubeCluster {
  /** https://127.0.0.1:port of the apiserver. */
  readonly url: string;
  readonly dir: string;
  /** The kubectl binary (same version as the apiserver). */
  readonly kubectl: string;
  /** A kubeconfig file for `user` (a token in the apiserver's token file). */
  kubeconfigPath(user: "admin" | "slipway"): string;
  kubeConfig(user: "admin" | "slipway"): KubeConfig;
  /** Raw API request as the admin (system:masters); JSON in, JSON out; throws on non-2xx. */
  api<T = unknown>(method: string, apiPath: string, body?: unknown, contentType?: string): Promise<T>;
  /** Runs kubectl as `user`, with stdin; never throws for a non-zero exit. */
  kubectlRun(
    user: "admin" | "slipway",
    args: readonly string[],
    stdin?: string,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Sets what the stand-in kubelet does with pods whose name starts with `podPrefix` in `namespace`. */
  script(namespace: string, podPrefix: string, script: PodScript): void;
  /** Paths the stand-in kubelet was asked for (to tell which logs were read). */
  readonly logRequests: string[];
  /**
   * The requests Slipway's user made, in the order the apiserver received them (its audit log);
   * empty unless started with `{ audit: true }`.
   */
  requests(): Promise<AuditedRequest[]>;
  stop(): Promise<void>;
}

/** One request of user "slipway" as the apiserver's audit log records it. */
export interface AuditedRequest {
  /** get, list, watch, create, patch, update, delete, deletecollection. */
  readonly verb: string;
  readonly path: string;
  readonly query: Record<string, string>;
  /** The namespace the request was about; undefined for cluster-wide (all-namespace) ones. */
  readonly namespace: string | undefined;
  /** The HTTP status the apiserver answered. */
  readonly code: number | undefined;
}

/** Metadata of Slipway's own requests, once answered; nothing of anyone else's. */
const AUDIT_POLICY = JSON.stringify({
  apiVersion: "audit.k8s.io/v1",
  kind: "Policy",
  omitStages: ["RequestReceived", "ResponseStarted", "Panic"],
  rules: [{ level: "Metadata", users: ["slipway"] }, { level: "None" }],
});

interface Certs {
  ca: string;
  caKey: string;
  cert: string;
  key: string;
  saKey: string;
  saPub: string;
}

async function makeCerts(dir: string): Promise<Certs> {
  const c = (f: string) => path.join(dir, f);
  const sh = (cmd: string) => run("sh", ["-c", cmd], { cwd: dir });
  await sh(
    "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=slipway-test-ca 2>/dev/null",
  );
  await writeFile(
    c("san.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  await sh(
    "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=kube-apiserver 2>/dev/null && " +
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext 2>/dev/null",
  );
  await sh(
    "openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null",
  );
  return {
    ca: c("ca.crt"),
    caKey: c("ca.key"),
    cert: c("server.crt"),
    key: c("server.key"),
    saKey: c("sa.key"),
    saPub: c("sa.pub"),
  };
}

async function spawnLogged(dir: string, name: string, bin: string, args: string[]): Promise<ChildProcess> {
  const out = await open(path.join(dir, `${name}.log`), "w");
  const child = spawn(bin, args, { stdio: ["ignore", out.fd, out.fd] });
  child.once("exit", () => void out.close().catch(() => undefined));
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Slipway's subject in these tests (the token user), as `SLIPWAY_KUBE_SUBJECT=user:slipway` says. */
export const SLIPWAY_TEST_SUBJECT = { kind: "User", name: "slipway" } as const;

const RBAC_DIR = path.resolve(import.meta.dirname, "../../infra/kubernetes/rbac");

/**
 * Gives Slipway's user ("slipway") the rights it runs with: exactly infra/kubernetes/rbac, applied as
 * an operator would (`kubectl apply -k`), plus a test-only ClusterRoleBinding of ClusterRole `slipway`
 * to the token User the harness authenticates Slipway as (the installed binding names the
 * ServiceAccount). Every real-cluster test grants rights through here, so each exercises the role.
 */
export async function grantSlipway(cluster: KubeCluster): Promise<void> {
  await cluster
    .api("POST", "/api/v1/namespaces", { metadata: { name: "slipway" } })
    .catch((error: unknown) => {
      if (!String(error).includes(": 409 ")) throw error;
    });
  const applied = await cluster.kubectlRun("admin", ["apply", "-k", RBAC_DIR]);
  if (applied.code !== 0) throw new Error(`kubectl apply -k ${RBAC_DIR}: ${applied.stderr}`);
  await cluster.api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    metadata: { name: "slipway-test-user" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "slipway" },
    subjects: [{ kind: "User", name: "slipway", apiGroup: "rbac.authorization.k8s.io" }],
  });
}

/**
 * Starts the control plane and the stand-in kubelet; `stop()` ends them and removes the temp dir.
 * `apiPort` puts the apiserver on a port chosen beforehand, for a test whose Slipway starts before it.
 * `audit` makes the apiserver log Slipway's requests, for tests that check what was sent and in which
 * order (as the HTTP double records them).
 */
export async function startKubeCluster(
  options: { apiPort?: number; audit?: boolean } = {},
): Promise<KubeCluster> {
  const assets = kubeAssets();
  if (assets.skip) throw new Error(assets.skip);
  const bin = await unpack();
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-kube-"));
  const children: ChildProcess[] = [];
  let logServer: https.Server | undefined;
  let kubelet: { stop: () => Promise<void> } | undefined;
  const stop = async () => {
    await kubelet?.stop();
    for (const c of children.reverse()) await stopChild(c);
    await new Promise((r) => (logServer ? logServer.close(r) : r(undefined)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const certs = await makeCerts(dir);
    const tokens = { admin: "admin-token-0123456789", slipway: "slipway-token-0123456789" };
    await writeFile(
      path.join(dir, "tokens.csv"),
      `${tokens.admin},admin,uid-admin,"system:masters"\n${tokens.slipway},slipway,uid-slipway,"slipway"\n`,
    );
    const [etcdClient, etcdPeer, freeApiPort, cmPort, schedPort, kubeletPort] = await Promise.all(
      Array.from({ length: 6 }, () => freePort()),
    );
    const apiPort = options.apiPort ?? freeApiPort;
    const url = `https://127.0.0.1:${apiPort}`;
    const auditLog = path.join(dir, "audit.log");
    if (options.audit) await writeFile(path.join(dir, "audit-policy.json"), AUDIT_POLICY);
    children.push(
      await spawnLogged(dir, "etcd", "etcd", [
        "--name=default",
        `--data-dir=${path.join(dir, "etcd")}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
        "--unsafe-no-fsync",
      ]),
    );
    children.push(
      await spawnLogged(dir, "kube-apiserver", path.join(bin, "kube-apiserver"), [
        `--etcd-servers=http://127.0.0.1:${etcdClient}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${apiPort}`,
        "--advertise-address=127.0.0.1",
        "--endpoint-reconciler-type=none",
        `--tls-cert-file=${certs.cert}`,
        `--tls-private-key-file=${certs.key}`,
        `--client-ca-file=${certs.ca}`,
        `--token-auth-file=${path.join(dir, "tokens.csv")}`,
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        `--service-account-key-file=${certs.saPub}`,
        `--service-account-signing-key-file=${certs.saKey}`,
        "--service-cluster-ip-range=10.96.0.0/16",
        "--allow-privileged=false",
        "--kubelet-preferred-address-types=InternalIP",
        "--enable-priority-and-fairness=false",
        ...(options.audit
          ? [
              `--audit-policy-file=${path.join(dir, "audit-policy.json")}`,
              `--audit-log-path=${auditLog}`,
              "--audit-log-format=json",
            ]
          : []),
      ]),
    );
    const adminKc = kubeconfigText(url, certs.ca, tokens.admin);
    await writeFile(path.join(dir, "admin.kubeconfig"), adminKc);
    await writeFile(path.join(dir, "slipway.kubeconfig"), kubeconfigText(url, certs.ca, tokens.slipway));
    const ca = readFileSync(certs.ca);
    const api = async <T>(
      method: string,
      apiPath: string,
      body?: unknown,
      contentType?: string,
    ): Promise<T> => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      return new Promise<T>((resolve, reject) => {
        const req = https.request(
          `${url}${apiPath}`,
          {
            method,
            ca,
            headers: {
              authorization: `Bearer ${tokens.admin}`,
              accept: "application/json",
              // Node sends a DELETE's body without chunking: without a length the server would read
              // it as the next request on the kept-alive connection.
              ...(payload
                ? {
                    "content-type": contentType ?? "application/json",
                    "content-length": String(Buffer.byteLength(payload)),
                  }
                : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString();
              if ((res.statusCode ?? 0) >= 300) {
                reject(new Error(`${method} ${apiPath}: ${res.statusCode} ${text.slice(0, 400)}`));
              } else {
                try {
                  resolve((text ? JSON.parse(text) : undefined) as T);
                } catch {
                  resolve(text as T); // /readyz answers "ok"
                }
              }
            });
          },
        );
        req.on("error", reject);
        req.end(payload);
      });
    };
    await waitReady(api, children[1]!, dir);
    children.push(
      await spawnLogged(dir, "kube-controller-manager", path.join(bin, "kube-controller-manager"), [
        `--kubeconfig=${path.join(dir, "admin.kubeconfig")}`,
        "--leader-elect=false",
        "--controllers=*,-nodelifecycle,-nodeipam,-route,-service,-cloud-node-lifecycle,-persistentvolume-binder,-attachdetach",
        `--service-account-private-key-file=${certs.saKey}`,
        `--root-ca-file=${certs.ca}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${cmPort}`,
        // Controllers act within a second, so a test's rollout or Job is not a poll interval behind.
        "--concurrent-deployment-syncs=5",
      ]),
    );
    children.push(
      await spawnLogged(dir, "kube-scheduler", path.join(bin, "kube-scheduler"), [
        `--kubeconfig=${path.join(dir, "admin.kubeconfig")}`,
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        `--secure-port=${schedPort}`,
      ]),
    );
    const scripts: { namespace: string; prefix: string; script: PodScript }[] = [];
    const scriptOf = (namespace: string, pod: string): PodScript =>
      scripts.findLast((s) => s.namespace === namespace && pod.startsWith(s.prefix))?.script ?? {};
    const logRequests: string[] = [];
    /** When a `running` container's log began, by namespace/pod/container. */
    const runningSince = new Map<string, number>();
    logServer = https.createServer(
      { cert: readFileSync(certs.cert), key: readFileSync(certs.key) },
      (req, res) => {
        const u = new URL(req.url ?? "/", "https://x");
        logRequests.push(u.pathname);
        const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(u.pathname);
        if (!m) {
          res.writeHead(404).end("not found");
          return;
        }
        const script = scriptOf(m[1]!, m[2]!);
        if (script.logStatus) {
          res.writeHead(script.logStatus).end("stand-in kubelet: log unreadable");
          return;
        }
        const stamp = u.searchParams.get("timestamps") === "true";
        const key = `${m[1]}/${m[2]}/${m[3]}`;
        // A running container printed its lines once it ran: no earlier than the first read of them.
        // So did a container with lines of its own (a Tekton step): a second read sees the same times.
        if ((script.running || script.containerLogs) && !runningSince.has(key))
          runningSince.set(key, Date.now());
        const all = script.containerLogs?.[m[3]!] ?? script.logs ?? [`stand-in kubelet ran ${m[3]}`];
        // As a kubelet: `tailLines` keeps the last lines only.
        const tail = Number(u.searchParams.get("tailLines") ?? Number.NaN);
        const lines = Number.isInteger(tail) && tail >= 0 ? all.slice(Math.max(0, all.length - tail)) : all;
        const t = new Date(runningSince.get(key) ?? Date.now() - 1000).toISOString();
        res.writeHead(200, { "content-type": "text/plain" });
        res.end(lines.map((l) => `${stamp ? `${t} ` : ""}${l}\n`).join(""));
      },
    );
    await new Promise<void>((r) => logServer!.listen(kubeletPort, "127.0.0.1", r));
    kubelet = await startStandInKubelet(api, kubeletPort!, scriptOf);
    const kubectl = path.join(bin, "kubectl");
    return {
      url,
      dir,
      kubectl,
      logRequests,
      requests: async () => (options.audit ? readAudit(auditLog) : []),
      kubeconfigPath: (user) => path.join(dir, `${user}.kubeconfig`),
      kubeConfig: (user) => {
        const kc = new KubeConfig();
        kc.loadFromFile(path.join(dir, `${user}.kubeconfig`));
        return kc;
      },
      api,
      kubectlRun: (user, args, stdin) =>
        new Promise((resolve) => {
          const child = spawn(kubectl, [`--kubeconfig=${path.join(dir, `${user}.kubeconfig`)}`, ...args]);
          let stdout = "";
          let stderr = "";
          child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
          child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
          child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
          child.stdin.end(stdin ?? "");
        }),
      script: (namespace, prefix, script) => scripts.push({ namespace, prefix, script }),
      stop,
    };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

function kubeconfigText(url: string, ca: string, token: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server: url, "certificate-authority": ca } }],
    users: [{ name: "user", user: { token } }],
    contexts: [{ name: "test", context: { cluster: "test", user: "user" } }],
    "current-context": "test",
  });
}

type Api = <T = unknown>(method: string, apiPath: string, body?: unknown, contentType?: string) => Promise<T>;

async function waitReady(api: Api, apiserver: ChildProcess, dir: string): Promise<void> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (apiserver.exitCode !== null) throw new Error(`kube-apiserver exited; see ${dir}/kube-apiserver.log`);
    try {
      await api("GET", "/readyz");
      // RBAC's bootstrap roles exist once the default namespace's service account can be made.
      await api("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin");
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`kube-apiserver not ready after 90 s: ${String(error)}`);
      await sleep(300);
    }
  }
}

interface PodLite {
  metadata: {
    name: string;
    namespace: string;
    deletionTimestamp?: string;
    ownerReferences?: { kind: string }[];
  };
  spec: { nodeName?: string; containers: { name: string; image: string }[] };
  status?: { phase?: string; containerStatuses?: unknown[] };
}

/**
 * The Node and its kubelet's loop: a Ready Node with room for every test pod (the not-ready taint
 * admission adds is removed, as the node lifecycle controller would), then every 200 ms the pods bound
 * to it get the status a kubelet would report.
 */
async function startStandInKubelet(
  api: Api,
  port: number,
  scriptOf: (namespace: string, pod: string) => PodScript,
): Promise<{ stop: () => Promise<void> }> {
  await api("POST", "/api/v1/nodes", {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: NODE_NAME,
      labels: { "kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux" },
    },
  });
  const now = new Date().toISOString();
  const resources = { cpu: "16", memory: "64Gi", pods: "200", "ephemeral-storage": "100Gi" };
  await api(
    "PATCH",
    `/api/v1/nodes/${NODE_NAME}/status`,
    {
      status: {
        capacity: resources,
        allocatable: resources,
        addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
        daemonEndpoints: { kubeletEndpoint: { Port: port } },
        conditions: [
          {
            type: "Ready",
            status: "True",
            reason: "KubeletReady",
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          },
        ],
        nodeInfo: { kubeletVersion: "v1.24.0", architecture: "amd64", operatingSystem: "linux" },
      },
    },
    "application/merge-patch+json",
  );
  await api(
    "PATCH",
    `/api/v1/nodes/${NODE_NAME}`,
    { spec: { taints: null } },
    "application/merge-patch+json",
  );
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const pods = await api<{ items: PodLite[] }>(
          "GET",
          `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${NODE_NAME}`)}`,
        );
        for (const pod of pods.items) await tend(api, pod, scriptOf).catch(() => undefined);
      } catch {
        // The apiserver may be stopping; the next round tries again.
      }
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

async function tend(
  api: Api,
  pod: PodLite,
  scriptOf: (namespace: string, pod: string) => PodScript,
): Promise<void> {
  const { name, namespace } = pod.metadata;
  const base = `/api/v1/namespaces/${namespace}/pods/${name}`;
  if (pod.metadata.deletionTimestamp) {
    await api("DELETE", base, { kind: "DeleteOptions", apiVersion: "v1", gracePeriodSeconds: 0 });
    return;
  }
  if (pod.status?.phase !== "Pending") return;
  const script = scriptOf(namespace, name);
  if (script.waiting) {
    // Reported once: the pod stays as a kubelet leaves a container it cannot start.
    if (pod.status?.containerStatuses?.length) return;
    await api(
      "PATCH",
      `${base}/status`,
      { status: waitingStatus(pod, script) },
      "application/merge-patch+json",
    );
    return;
  }
  const isJob =
    (pod.metadata.ownerReferences?.some((o) => o.kind === "Job") ?? false) && script.running !== true;
  const started = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const finished = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const exitCode = script.exitCode ?? 0;
  const condition = (type: string, status: boolean) => ({
    type,
    status: status ? "True" : "False",
    lastTransitionTime: finished,
  });
  const status = isJob
    ? {
        phase: exitCode === 0 ? "Succeeded" : "Failed",
        conditions: [
          condition("Initialized", true),
          condition("Ready", false),
          condition("PodScheduled", true),
        ],
        hostIP: "127.0.0.1",
        podIP: "127.0.0.1",
        startTime: started,
        containerStatuses: pod.spec.containers.map((c) => ({
          name: c.name,
          image: c.image,
          imageID: "",
          ready: false,
          restartCount: 0,
          started: false,
          state: {
            terminated: {
              exitCode,
              reason: exitCode === 0 ? "Completed" : "Error",
              startedAt: started,
              finishedAt: finished,
            },
          },
        })),
      }
    : {
        phase: "Running",
        conditions: [
          condition("Initialized", true),
          condition("Ready", !script.neverReady),
          condition("ContainersReady", !script.neverReady),
          condition("PodScheduled", true),
        ],
        hostIP: "127.0.0.1",
        podIP: "127.0.0.1",
        startTime: started,
        containerStatuses: pod.spec.containers.map((c) => ({
          name: c.name,
          image: c.image,
          imageID: "",
          ready: !script.neverReady,
          restartCount: 0,
          started: true,
          state: { running: { startedAt: started } },
        })),
      };
  await api("PATCH", `${base}/status`, { status }, "application/merge-patch+json");
}

/** The status of a pod whose container waits (never pulled, or crashing and restarting). */
function waitingStatus(pod: PodLite, script: PodScript) {
  const at = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const crashing = script.lastExit !== undefined;
  const condition = (type: string, status: boolean) => ({
    type,
    status: status ? "True" : "False",
    lastTransitionTime: at,
  });
  return {
    phase: crashing ? "Running" : "Pending",
    conditions: [
      condition("Initialized", true),
      condition("Ready", false),
      condition("ContainersReady", false),
      condition("PodScheduled", true),
    ],
    hostIP: "127.0.0.1",
    podIP: "127.0.0.1",
    startTime: at,
    containerStatuses: pod.spec.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: "",
      ready: false,
      restartCount: script.lastExit?.restarts ?? 0,
      started: false,
      state: { waiting: script.waiting },
      ...(script.lastExit
        ? {
            lastState: {
              terminated: {
                exitCode: script.lastExit.exitCode,
                reason: script.lastExit.reason,
                startedAt: at,
                finishedAt: at,
              },
            },
          }
        : {}),
    })),
  };
}

/** Slipway's requests from the audit log, in the order received. */
async function readAudit(file: string): Promise<AuditedRequest[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map(
      (l) =>
        JSON.parse(l) as {
          verb: string;
          requestURI: string;
          requestReceivedTimestamp: string;
          objectRef?: { namespace?: string };
          responseStatus?: { code?: number };
        },
    )
    .sort((a, b) => a.requestReceivedTimestamp.localeCompare(b.requestReceivedTimestamp))
    .map((e) => {
      const u = new URL(e.requestURI, "https://x");
      return {
        verb: e.verb,
        path: u.pathname,
        query: Object.fromEntries(u.searchParams),
        namespace: e.objectRef?.namespace,
        code: e.responseStatus?.code,
      };
    });
}
