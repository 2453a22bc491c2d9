import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, pythonApp, waitFor } from "./helpers/apps.js";
import { startKubeDouble, type KubeDouble, type KubeObject } from "./helpers/kube-double.js";
import { buildIdFrom, clientOf, startLocalServer } from "./helpers/local-server.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";

/**
 * The cluster profile's image path with a registry outside Slipway: a second real docker-registry
 * (htpasswd) started here is `SLIPWAY_REGISTRY_URL`. A real build pushes there, the deployer (against
 * the Kubernetes API double) applies the tool's `registry-pull` Secret before its workloads, and the
 * credential in that Secret pulls the image's manifest from the registry over real HTTP.
 * The API double stays here: this file's time goes to a real buildpack build and registry, and the
 * cluster half (the pull Secret applied before the workloads, kept by prune) runs against a real
 * kube-apiserver in test/kubernetes-parity.test.ts.
 */
const TOOL = "ext-reg";
const NS = `tool-${TOOL}`;

let external: TestRegistry;
let kube: KubeDouble;
let server: RunningServer;
let home: string;
let tmp: string;
let embeddedPort: number;

const client = clientOf(() => server);
const { api } = client;

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  image: string | null;
  image_digest: string | null;
  release_id: string | null;
}

type PodSpec = { imagePullSecrets?: { name: string }[]; containers: { image: string }[] };
type DeploymentObject = KubeObject & { spec: { template: { spec: PodSpec } } };
type SecretObject = KubeObject & { type: string; data: Record<string, string> };

beforeAll(async () => {
  external = await startRegistry();
  kube = await startKubeDouble();
  kube.scriptRollout(NS, "web", [{ replicas: 1, updatedReplicas: 1, availableReplicas: 1 }]);
  tmp = await mkdtemp(path.join(os.tmpdir(), "slipway-extreg-"));
  const kubeconfig = path.join(tmp, "kubeconfig");
  await writeFile(
    kubeconfig,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "double", cluster: { server: kube.url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "slipway", user: { token: "double-token" } }],
      contexts: [{ name: "double", context: { cluster: "double", user: "slipway" } }],
      "current-context": "double",
    }),
  );
  let config;
  ({ server, home, config } = await startLocalServer({
    name: "extreg",
    env: {
      SLIPWAY_REGISTRY_URL: external.url,
      SLIPWAY_REGISTRY_USERNAME: external.username,
      SLIPWAY_REGISTRY_PASSWORD: external.password,
      SLIPWAY_RUNTIME: "kubernetes",
      SLIPWAY_KUBECONFIG: kubeconfig,
      SLIPWAY_INGRESS_DOMAIN: "tools.example",
      // One kept release: the second deploy's retention deletes the first image from the external registry.
      SLIPWAY_KEEP_RELEASES: "1",
    },
  }));
  embeddedPort = config.registryPort;
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await kube?.close();
  await external?.stop();
  if (home) await rm(home, { recursive: true, force: true });
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("images in an external registry, pulled with the tool's pull Secret", () => {
  let build: BuildView;
  let repo: Awaited<ReturnType<typeof gitRepo>>;
  let pushUrl: string;

  async function deployed(b: BuildView) {
    return waitFor(
      "the release to go live",
      async () => {
        const r = await api<{ status: string; reason: string | null }>(
          `/api/v1/tools/${TOOL}/releases/${b.release_id}`,
        );
        return r.status === "deploying" ? undefined : r;
      },
      120_000,
    );
  }

  it("pushes a real build to the external registry as tool-<tool>/<component>, and deploys it by digest", async () => {
    const tool = await api<{ git_url: string; token: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: TOOL }),
    });
    repo = await gitRepo(pythonApp("hello from outside"));
    pushUrl = tool.git_url.replace("http://", `http://user:${tool.token}@`);
    build = await client.buildDone<BuildView>(buildIdFrom(await git(repo.dir, ["push", pushUrl, "main"])));
    expect(build.status, build.reason ?? "").toBe("success");
    expect(build.image).toMatch(
      new RegExp(`^${external.host.replace(/\./g, "\\.")}/tool-${TOOL}/web:[0-9a-f]{40}$`),
    );

    const release = await deployed(build);
    expect(release.status, release.reason ?? "").toBe("live");

    const deployment = kube.get("Deployment", NS, "web") as DeploymentObject;
    const pod = deployment.spec.template.spec;
    expect(pod.containers[0]!.image).toBe(`${external.host}/tool-${TOOL}/web@${build.image_digest}`);
    expect(pod.imagePullSecrets).toEqual([{ name: "registry-pull" }]);
  }, 900_000);

  it("does not start the embedded registry", async () => {
    await expect(fetch(`http://127.0.0.1:${embeddedPort}/v2/`)).rejects.toThrow();
  });

  it("applies the pull Secret before the workloads, and keeps it through the prune", () => {
    const applies = kube.requests.filter((r) => r.method === "PATCH").map((r) => r.path);
    const secretAt = applies.findIndex((p) => p.endsWith(`/namespaces/${NS}/secrets/registry-pull`));
    const deploymentAt = applies.findIndex((p) => p.endsWith(`/namespaces/${NS}/deployments/web`));
    expect(secretAt).toBeGreaterThanOrEqual(0);
    expect(secretAt).toBeLessThan(deploymentAt);
    expect(
      kube.requests.some((r) => r.method === "DELETE" && r.path.endsWith("/secrets/registry-pull")),
    ).toBe(false);
    expect(kube.get("Secret", NS, "registry-pull")).toBeDefined();
  });

  it("holds a credential that pulls the image's manifest from the registry over HTTP", async () => {
    const secret = kube.get("Secret", NS, "registry-pull") as SecretObject;
    expect(secret.type).toBe("kubernetes.io/dockerconfigjson");
    const config = JSON.parse(Buffer.from(secret.data[".dockerconfigjson"]!, "base64").toString("utf8")) as {
      auths: Record<string, { auth: string }>;
    };
    expect(Object.keys(config.auths)).toEqual([external.host]);
    const url = `${external.url}/v2/tool-${TOOL}/web/manifests/${build.image_digest}`;
    const accept = "application/vnd.oci.image.manifest.v1+json";

    const anonymous = await fetch(url, { headers: { accept } });
    await anonymous.body?.cancel();
    expect(anonymous.status).toBe(401);

    const res = await fetch(url, {
      headers: { accept, authorization: `Basic ${config.auths[external.host]!.auth}` },
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(`sha256:${createHash("sha256").update(body).digest("hex")}`).toBe(build.image_digest);
  });

  it("shows the pull Secret in `slipway render` without its content", async () => {
    const res = await client.request<{ objects: SecretObject[] }>(`/api/v1/tools/${TOOL}/manifests`);
    expect(res.status).toBe(200);
    const secret = res.body.objects.find((o) => o.kind === "Secret" && o.metadata.name === "registry-pull");
    expect(secret?.data).toEqual({ ".dockerconfigjson": "***" });
    expect(JSON.stringify(res.body)).not.toContain(external.password);
  });

  it("deletes an image from the external registry once no kept release runs it", async () => {
    const manifest = (digest: string) =>
      fetch(`${external.url}/v2/tool-${TOOL}/web/manifests/${digest}`, {
        headers: {
          accept: "application/vnd.oci.image.manifest.v1+json",
          authorization: `Basic ${Buffer.from(`${external.username}:${external.password}`).toString("base64")}`,
        },
      });
    await repo.commit(pythonApp("hello again"), "v2");
    const second = await client.buildDone<BuildView>(
      buildIdFrom(await git(repo.dir, ["push", pushUrl, "main"])),
    );
    expect(second.status, second.reason ?? "").toBe("success");
    expect((await deployed(second)).status).toBe("live");
    await waitFor(
      "retention to delete the first image",
      async () => {
        const res = await manifest(build.image_digest!);
        await res.body?.cancel();
        return res.status === 404 ? true : undefined;
      },
      30_000,
    );
    const kept = await manifest(second.image_digest!);
    await kept.body?.cancel();
    expect(kept.status).toBe(200);
  }, 600_000);
});
