import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Release } from "../services/domain/releases/release.js";
import { freePort } from "../services/platform/net.js";
import type { RunningServer } from "../services/roles/server/server.js";
import { waitFor } from "./helpers/apps.js";
import { grantSlipway, kubeAssets, startKubeCluster, type KubeCluster } from "./helpers/kube-cluster.js";
import { capturedLogger, clientOf, startLocalServer } from "./helpers/local-server.js";

/**
 * Issue 14 items 5 and 6, against a real kube-apiserver: Slipway's server (cluster profile) starts
 * while its cluster is not up yet, says so in healthz and `webservice status`, and once the API server
 * comes up on the kubeconfig's address it recovers by itself: a deploy queued meanwhile rolls out, the
 * missing Ingress class is reported, and a restart made afterwards is listed as a restart with a deploy
 * log of its own.
 */
const assets = kubeAssets();
if (assets.skip) console.warn(`kubernetes-start tests skipped: ${assets.skip}`);

const TOOL = "kstart";
/** The token helpers/kube-cluster.ts gives the "slipway" user. */
const SLIPWAY_TOKEN = "slipway-token-0123456789";

interface Health {
  status: string;
  kubernetes?: { status: string; reason: string | null; server: string | null; warnings: string[] };
}
interface ReleaseRow {
  id: string;
  status: string;
  live: boolean;
  trigger: { kind: string };
  rollback_of: string | null;
  restart_of: string | null;
}

describe.skipIf(assets.skip !== undefined)("Kubernetes profile whose cluster is down at start", () => {
  let cluster: KubeCluster | undefined;
  let server: RunningServer;
  let home: string;
  let tmp: string;
  let apiPort: number;
  let store: RedisStore;
  const captured = capturedLogger("info");
  const { api, cli } = clientOf(() => server);
  const seeded: Release = {
    id: "seedrelease1",
    tool: TOOL,
    component: "web",
    build_id: "seedbuild1",
    commit: "c".repeat(40),
    image: "127.0.0.1:5000/tool-kstart/web:c",
    image_digest: `sha256:${"a".repeat(64)}`,
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status: "superseded",
    processes: ["web"],
    created_at: new Date(Date.now() - 60_000).toISOString(),
    finished_at: new Date(Date.now() - 30_000).toISOString(),
  };

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "slipway-kstart-"));
    // Nothing listens here until the test starts the API server on it.
    apiPort = await freePort();
    const kubeconfig = path.join(tmp, "kubeconfig");
    // The cluster's CA is made when it starts, after Slipway read this file: TLS is not verified here.
    await writeFile(
      kubeconfig,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [
          {
            name: "later",
            cluster: { server: `https://127.0.0.1:${apiPort}`, "insecure-skip-tls-verify": true },
          },
        ],
        users: [{ name: "slipway", user: { token: SLIPWAY_TOKEN } }],
        contexts: [{ name: "later", context: { cluster: "later", user: "slipway" } }],
        "current-context": "later",
      }),
    );
    let config;
    ({ server, home, config } = await startLocalServer({
      name: "kstart",
      logger: captured.logger,
      ready: false,
      env: {
        SLIPWAY_RUNTIME: "kubernetes",
        SLIPWAY_KUBECONFIG: kubeconfig,
        SLIPWAY_INGRESS_DOMAIN: "tools.example",
        SLIPWAY_INGRESS_CLASS: "no-such-class",
        SLIPWAY_KUBE_RETRY_MAX_S: "2",
        SLIPWAY_KUBE_SUBJECT: "user:slipway",
      },
    }));
    store = RedisStore.create(`redis://127.0.0.1:${config.redisPort}`);
  }, 300_000);

  afterAll(async () => {
    await server?.close();
    await store?.close();
    await cluster?.stop();
    if (home) await rm(home, { recursive: true, force: true });
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it("answers while the cluster is unreachable, and says why in healthz and webservice status", async () => {
    const health = await waitFor(
      "healthz to report Kubernetes unavailable",
      async () => {
        const h = (await (await fetch(`${server.url}/api/v1/healthz`)).json()) as Health;
        return h.kubernetes?.status === "unavailable" ? h : undefined;
      },
      30_000,
    );
    expect(health.status).toBe("degraded");
    expect(health.kubernetes?.reason).toContain("ECONNREFUSED");
    expect(health.kubernetes?.server).toBe(`https://127.0.0.1:${apiPort}`);

    // The API works: a tool is created, and a rollback is accepted and waits for the cluster.
    await api(`/api/v1/tools`, { method: "POST", body: JSON.stringify({ name: TOOL }) });
    await store.createRelease(seeded);
    const queued = await api<ReleaseRow>(`/api/v1/tools/${TOOL}/rollback`, {
      method: "POST",
      body: JSON.stringify({ release_id: seeded.id }),
    });
    expect(queued.status).toBe("deploying");

    const status = await cli(["webservice", "status", "--tool", TOOL]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/kubernetes unavailable since .*ECONNREFUSED/);

    // Logged once for the outage, not once per attempt (the retries are 1 s, 2 s, 2 s … apart).
    await new Promise((r) => setTimeout(r, 5_000));
    const outageLines = captured
      .text()
      .split("\n")
      .filter((l) => l.includes("Kubernetes is unreachable"));
    expect(outageLines).toHaveLength(1);
  }, 120_000);

  it("recovers once the API server is up: the queued deploy rolls out, a missing Ingress class is reported", async () => {
    cluster = await startKubeCluster({ apiPort });
    await grantSlipway(cluster);
    const health = await waitFor(
      "healthz to report Kubernetes available",
      async () => {
        const h = (await (await fetch(`${server.url}/api/v1/healthz`)).json()) as Health;
        // Its first probe may come before grantSlipway (a 403 "cannot check"); the next one, 30 s on, knows.
        return h.kubernetes?.status === "available" && /does not exist/.test(h.kubernetes.warnings.join())
          ? h
          : undefined;
      },
      90_000,
      500,
    );
    expect(health.kubernetes?.reason).toBeNull();
    expect(health.status).toBe("degraded");
    expect(health.kubernetes?.warnings.join("\n")).toContain(
      'Ingress class "no-such-class" does not exist in the cluster: set SLIPWAY_INGRESS_CLASS',
    );
    expect(captured.text()).toContain("Kubernetes is reachable");
    expect(captured.text()).toContain('Ingress class \\"no-such-class\\" does not exist');

    const live = await waitFor(
      "the rollback queued during the outage to go live",
      async () => {
        const list = await api<ReleaseRow[]>(`/api/v1/tools/${TOOL}/releases`);
        const r = list.find((x) => x.trigger.kind === "rollback");
        if (r?.status === "failed") throw new Error(`rollback failed: ${JSON.stringify(r)}`);
        return r?.live ? r : undefined;
      },
      120_000,
      500,
    );
    expect(live.rollback_of).toBe(seeded.id);
    const deployment = await cluster.api<{
      spec: { template: { spec: { containers: { image: string }[] } } };
    }>("GET", `/apis/apps/v1/namespaces/tool-${TOOL}/deployments/web`);
    expect(deployment.spec.template.spec.containers[0]?.image).toContain(seeded.image_digest);

    const status = await cli(["webservice", "status", "--tool", TOOL]);
    expect(status.stdout).toContain(`${TOOL}: running`);
    expect(status.stdout).toContain('warning  Ingress class "no-such-class" does not exist');
  }, 300_000);

  it("lists a restart of a rollback as a restart, with its own deploy log", async () => {
    const before = (await api<ReleaseRow[]>(`/api/v1/tools/${TOOL}/releases`)).find((r) => r.live)!;
    expect(before.trigger.kind).toBe("rollback");
    const seedLog = await api<{ lines: string[] }>(`/api/v1/tools/${TOOL}/releases/${seeded.id}/logs`);

    await api(`/api/v1/tools/${TOOL}/envvars/GREETING`, {
      method: "PUT",
      body: JSON.stringify({ value: "hello" }),
    });
    const restart = await waitFor(
      "the env var restart to go live",
      async () => {
        const list = await api<ReleaseRow[]>(`/api/v1/tools/${TOOL}/releases`);
        const r = list.find((x) => x.trigger.kind === "envvars");
        if (r?.status === "failed") throw new Error(`restart failed: ${JSON.stringify(r)}`);
        return r?.live ? r : undefined;
      },
      120_000,
      500,
    );
    expect(restart.rollback_of).toBeNull();
    expect(restart.restart_of).toBe(before.id);

    const listed = await cli(["releases", "--tool", TOOL]);
    expect(listed.code).toBe(0);
    const line = listed.stdout.split("\n").find((l) => l.startsWith(restart.id))!;
    expect(line).toContain(`restart of ${before.id} (environment variable change)`);
    expect(line).not.toContain("rollback");

    // The restart's deploy is told in its own log; the build the image came from is not appended to.
    const own = await cli(["releases", "--tool", TOOL, "--log", restart.id]);
    expect(own.stdout).toContain(`===> DEPLOYING release ${restart.id}`);
    expect(own.stdout).toContain(`===> LIVE: release ${restart.id} serves ${TOOL}`);
    const rollbackLog = await api<{ lines: string[] }>(`/api/v1/tools/${TOOL}/releases/${before.id}/logs`);
    expect(rollbackLog.lines.join("\n")).toContain(`===> DEPLOYING release ${before.id}`);
    expect(rollbackLog.lines.join("\n")).not.toContain(restart.id);
    const seedAfter = await api<{ lines: string[] }>(`/api/v1/tools/${TOOL}/releases/${seeded.id}/logs`);
    expect(seedAfter.lines).toEqual(seedLog.lines);
  }, 300_000);
});
