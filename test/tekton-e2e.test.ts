import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, pythonApp, viaProxy, waitFor } from "./helpers/apps.js";
import { kubeAssets, startKubeCluster, type KubeCluster } from "./helpers/kube-cluster.js";
import { buildIdFrom, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";
import {
  TektonStandIn,
  createBuildsNamespace,
  installTektonCrds,
  type RunPlay,
} from "./helpers/tekton-controller.js";

/**
 * A push on a server whose builder is Tekton (`SLIPWAY_BUILD_BACKEND=tekton`), end to end with real
 * parts: a real kube-apiserver with Tekton's CRDs accepts the PipelineRun, a real docker-registry is the
 * external registry, a real `slipway server` (local profile for deploys) and real git. No Tekton
 * controller can run here: test/helpers/tekton-controller.ts plays it, printing the step pods' lines
 * and reporting as the run's result the digest of an image that really is in the registry. That image
 * is built first by a server with the local podman backend from the same commit, so it lands at the
 * name the export Task would push (`tool-<tool>/web:<commit>`) and is a runnable Slipway image.
 */
const assets = kubeAssets();
if (assets.skip) console.warn(`tekton-e2e tests skipped: ${assets.skip}`);

const TOOL = "tkn-e2e";
const NS = "slipway-builds";
const DETECT_LINES = ["tekton-detect: slipway/python 0.3.0", "tekton-detect: slipway/procfile 0.1.0"];
const BUILD_LINES = ["tekton-build: installing requirements", "tekton-build: layer web ready"];

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  image: string | null;
  image_digest: string | null;
  release_id: string | null;
}

let external: TestRegistry;
let cluster: KubeCluster;
let standIn: TektonStandIn;
let server: RunningServer | undefined;
let proxyPort = 0;
const homes: string[] = [];
let play: RunPlay = {};

const client = clientOf(() => server!);
const { api } = client;

async function createTool(): Promise<string> {
  const tool = await api<{ git_url: string; token: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name: TOOL }),
  });
  return tool.git_url.replace("http://", `http://user:${tool.token}@`);
}

describe.skipIf(assets.skip !== undefined)("a push built by Tekton goes live", () => {
  let repo: Awaited<ReturnType<typeof gitRepo>>;
  let prebuilt: BuildView;

  beforeAll(async () => {
    external = await startRegistry();
    const clusterStarting = startKubeCluster();
    repo = await gitRepo(pythonApp("hello from tekton"));

    // The runnable image the export Task would have pushed: a local podman build of the same commit.
    const podmanServer = await startLocalServer({
      name: "tkn-e2e-podman",
      env: {
        SLIPWAY_REGISTRY_URL: external.url,
        SLIPWAY_REGISTRY_USERNAME: external.username,
        SLIPWAY_REGISTRY_PASSWORD: external.password,
      },
    });
    homes.push(podmanServer.home);
    server = podmanServer.server;
    try {
      const pushUrl = await createTool();
      prebuilt = await client.buildDone<BuildView>(
        buildIdFrom(await git(repo.dir, ["push", pushUrl, "main"])),
      );
      expect(prebuilt.status, prebuilt.reason ?? "").toBe("success");
    } finally {
      await podmanServer.server.close();
      server = undefined;
      await removeToolContainers(TOOL);
    }

    cluster = await clusterStarting;
    await installTektonCrds(cluster);
    await createBuildsNamespace(cluster, NS, "slipway-registry-push");
    standIn = new TektonStandIn(cluster, NS, () => play);
    standIn.start();

    const tektonServer = await startLocalServer({
      name: "tkn-e2e-tekton",
      env: {
        SLIPWAY_REGISTRY_URL: external.url,
        SLIPWAY_REGISTRY_USERNAME: external.username,
        SLIPWAY_REGISTRY_PASSWORD: external.password,
        SLIPWAY_BUILD_BACKEND: "tekton",
        SLIPWAY_KUBECONFIG: cluster.kubeconfigPath("admin"),
        SLIPWAY_TEKTON_NAMESPACE: NS,
        SLIPWAY_TEKTON_BUILD_IMAGE: `${external.host}/slipway/build:bookworm`,
        SLIPWAY_TEKTON_RUN_IMAGE: `${external.host}/slipway/run:bookworm`,
        SLIPWAY_TEKTON_FETCH_IMAGE: `${external.host}/slipway/git:2`,
      },
    });
    homes.push(tektonServer.home);
    server = tektonServer.server;
    proxyPort = tektonServer.port;
  }, 1_200_000);

  afterAll(async () => {
    await server?.close();
    await removeToolContainers(TOOL);
    await standIn?.stop();
    await cluster?.stop();
    await external?.stop();
    for (const home of homes) await rm(home, { recursive: true, force: true });
  });

  it("creates a PipelineRun the API server accepts, streams its step pods' lines into `build logs -f`, and releases its digest", async () => {
    play = {
      steps: {
        "build/detect": { logs: DETECT_LINES },
        "build/build": { logs: BUILD_LINES },
      },
      results: {
        "export/image-digest": prebuilt.image_digest!,
        "export/image": prebuilt.image!,
        "build/processes": JSON.stringify([{ type: "web", buildpackId: "slipway/python" }]),
      },
    };
    const pushUrl = await createTool();
    const id = buildIdFrom(await git(repo.dir, ["push", pushUrl, "main"]));

    // Followed from right after the push, as a user would: the lines arrive while the run plays.
    const followed = await client.cli(["build", "logs", id, "-f"]);
    expect(followed.stdout).toContain(DETECT_LINES[0]);
    expect(followed.stdout).toContain(DETECT_LINES[1]);
    expect(followed.stdout).toContain(BUILD_LINES[1]);
    expect(followed.stdout.indexOf(DETECT_LINES[0]!)).toBeLessThan(followed.stdout.indexOf(BUILD_LINES[0]!));
    expect(followed.code, followed.stderr).toBe(0);

    const build = await client.buildDone<BuildView>(id);
    expect(build.status, build.reason ?? "").toBe("success");
    expect(build.image_digest).toBe(prebuilt.image_digest);

    const run = await cluster.api<{ metadata: { labels: Record<string, string> } }>(
      "GET",
      `/apis/tekton.dev/v1/namespaces/${NS}/pipelineruns/build-${id}`,
    );
    expect(run.metadata.labels["slipway.dev/tool"]).toBe(TOOL);
    expect(standIn.refused).toEqual([]);

    const release = await waitFor(
      "the release to go live",
      async () => {
        const r = await api<{ status: string; reason: string | null }>(
          `/api/v1/tools/${TOOL}/releases/${build.release_id}`,
        );
        return r.status === "deploying" ? undefined : r;
      },
      120_000,
    );
    expect(release.status, release.reason ?? "").toBe("live");

    const answer = await waitFor(
      "the app through the front proxy",
      async () => {
        const r = await viaProxy(proxyPort, TOOL);
        return r.status === 200 ? r : undefined;
      },
      60_000,
    );
    expect(answer.body).toContain("hello from tekton");
  }, 900_000);
});
