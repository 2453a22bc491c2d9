import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exportImage, type ExportRequest } from "../services/adapters/oci/export.js";
import type { LifecycleResult, Stack } from "../services/domain/lifecycle/types.js";
import { run } from "../services/platform/process.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";
import { freePort } from "../services/platform/net.js";

/**
 * A Debian minbase root filesystem with python3 (for a web process that needs no app runtime), made
 * once per machine with debootstrap and reused: about 40 s the first time.
 */
const ROOTFS = "/var/tmp/slipway-test-rootfs";
const PODMAN_ENV = { ...process.env, CONTAINERS_CONF: path.resolve("infra/containers.conf") };

async function ensureRootfs(): Promise<string> {
  if (existsSync(path.join(ROOTFS, "usr", "bin", "python3"))) return ROOTFS;
  const tmp = `${ROOTFS}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await run("debootstrap", [
    "--variant=minbase",
    "--include=python3",
    "bookworm",
    tmp,
    "http://deb.debian.org/debian",
  ]);
  // A run image ships no package caches: about 90 MB of .debs and lists.
  await rm(path.join(tmp, "var", "cache", "apt", "archives"), { recursive: true, force: true });
  await rm(path.join(tmp, "var", "lib", "apt", "lists"), { recursive: true, force: true });
  await mkdir(path.join(tmp, "var", "cache", "apt", "archives", "partial"), { recursive: true });
  await mkdir(path.join(tmp, "var", "lib", "apt", "lists", "partial"), { recursive: true });
  await rename(tmp, ROOTFS);
  return ROOTFS;
}

const stack = (rootfs: string): Stack => ({
  id: "test-bookworm-python3-v1",
  buildImage: "unused",
  runRootfs: rootfs,
  uid: 1000,
  gid: 1000,
});

let registry: TestRegistry;
let work: string;
let rootfs: string;

beforeAll(async () => {
  [registry, rootfs] = await Promise.all([startRegistry(), ensureRootfs()]);
  work = await mkdtemp(path.join(os.tmpdir(), "slipway-export-"));
}, 600_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** What the lifecycle would hand over: one launch layer, a `/cnb` with a `web` process, an app dir. */
async function fakeBuild(root: string): Promise<LifecycleResult> {
  const layer = path.join(root, "layers", "slipway_static", "site");
  const cnb = path.join(root, "cnb");
  const app = path.join(root, "app");
  await mkdir(path.join(layer, "share"), { recursive: true });
  await mkdir(path.join(cnb, "process"), { recursive: true });
  await mkdir(path.join(cnb, "lifecycle"), { recursive: true });
  await mkdir(app, { recursive: true });
  await writeFile(path.join(layer, "share", "banner.txt"), "from a launch layer\n");
  // Records who it runs as (inside /workspace, which only the CNB user may write) and serves the app.
  await writeFile(
    path.join(cnb, "process", "web"),
    '#!/bin/sh\nid -u > /workspace/whoami.txt\ncp /layers/slipway_static/site/share/banner.txt /workspace/\nexec python3 -m http.server "${PORT:-8000}" --bind 0.0.0.0 --directory /workspace\n',
  );
  await writeFile(path.join(cnb, "lifecycle", "launcher"), '#!/bin/sh\nexec "$@"\n');
  await chmod(path.join(cnb, "process", "web"), 0o755);
  await chmod(path.join(cnb, "lifecycle", "launcher"), 0o755);
  await writeFile(path.join(app, "index.html"), "<h1>hello v1</h1>\n");
  await writeFile(path.join(app, "Procfile"), "web: python3 -m http.server $PORT\n");
  return {
    group: [{ id: "slipway/static", version: "0.1.0", api: "0.10" }],
    processes: [
      {
        type: "web",
        command: ["python3"],
        args: ["-m", "http.server"],
        default: true,
        buildpackId: "slipway/static",
      },
    ],
    layers: [
      {
        buildpackId: "slipway/static",
        name: "site",
        hostDir: layer,
        imagePath: "/layers/slipway_static/site",
      },
    ],
    appDir: app,
    cnbDir: cnb,
    labels: [{ key: "org.example.built-by", value: "test" }],
  };
}

function request(result: LifecycleResult, overrides: Partial<ExportRequest> = {}): ExportRequest {
  return {
    result,
    stack: stack(rootfs),
    sourceDateEpoch: 1_700_000_000,
    repository: "tool-demo/web",
    tag: "0123456789abcdef0123456789abcdef01234567",
    source: {
      commit: "0123456789abcdef0123456789abcdef01234567",
      repository: "https://user:tok@gitlab.example/demo.git",
    },
    workDir: path.join(work, "scratch"),
    layerCacheDir: path.join(work, "layer-cache", "demo-web"),
    ...overrides,
  };
}

describe("exportImage", () => {
  let result: LifecycleResult;
  let firstDigest: string;

  beforeAll(async () => {
    result = await fakeBuild(path.join(work, "build"));
  });

  it("pushes an image, and the same inputs give the same digest and upload nothing", async () => {
    const client = registry.client();
    const first = await exportImage(client, request(result));
    expect(first.image).toBe(`${registry.host}/tool-demo/web:0123456789abcdef0123456789abcdef01234567`);
    expect(first.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(first.layers.map((l) => l.role)).toEqual(["run-image", "launch", "launcher", "app"]);
    // The base layer went to the shared repository once and was mounted from there.
    expect(first.blobsMounted).toBe(1);
    expect(await client.hasBlob("slipway/run", first.layers[0]?.digest ?? "")).toBe(true);
    firstDigest = first.digest;

    const again = await exportImage(client, request(result));
    expect(again.digest).toBe(first.digest);
    expect(again.blobsUploaded).toBe(0);
    expect(again.bytesUploaded).toBe(0);
    // Scratch files are gone.
    expect(await readdir(path.join(work, "scratch"))).toEqual([]);
    // Reused cache entries and freshly written layers are the same bytes.
    const uncached = await exportImage(client, request(result, { layerCacheDir: undefined }));
    expect(uncached.digest).toBe(first.digest);
    expect(uncached.blobsUploaded).toBe(0);

    const stored = await client.getManifest("tool-demo/web", again.digest);
    const manifest = JSON.parse(Buffer.from(stored?.body ?? []).toString()) as {
      layers: { digest: string }[];
    };
    expect(manifest.layers.map((l) => l.digest)).toEqual(first.layers.map((l) => l.digest));
  });

  it("uploads only the app layer and config when only an app file changes", async () => {
    await writeFile(path.join(result.appDir, "index.html"), "<h1>hello v2</h1>\n");
    try {
      const changed = await exportImage(
        registry.client(),
        request(result, { sourceDateEpoch: 1_700_000_100 }),
      );
      expect(changed.digest).not.toBe(firstDigest);
      expect(changed.blobsUploaded).toBe(2);
      expect(changed.layers.filter((l) => l.uploaded).map((l) => l.role)).toEqual(["app"]);
    } finally {
      await writeFile(path.join(result.appDir, "index.html"), "<h1>hello v1</h1>\n");
    }
  });

  it("mounts the base layer into a new tool's repository instead of uploading it", async () => {
    const other = await exportImage(registry.client(), request(result, { repository: "tool-other/web" }));
    expect(other.blobsMounted).toBe(1);
    expect(other.layers[0]?.uploaded).toBe(false);
    // Same content, same digest, whatever the repository.
    expect(other.digest).toBe(firstDigest);
  });

  it("writes the CNB config: entrypoint, user, env, labels, created, no credentials", async () => {
    const client = registry.client();
    const stored = await client.getManifest("tool-demo/web", firstDigest);
    const manifest = JSON.parse(Buffer.from(stored?.body ?? []).toString()) as { config: { digest: string } };
    const res = await fetch(`${registry.url}/v2/tool-demo/web/blobs/${manifest.config.digest}`, {
      headers: {
        authorization: `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString("base64")}`,
      },
    });
    const text = await res.text();
    const config = JSON.parse(text) as {
      created: string;
      config: {
        User: string;
        Env: string[];
        Entrypoint: string[];
        WorkingDir: string;
        Labels: Record<string, string>;
      };
    };
    expect(config.created).toBe("2023-11-14T22:13:20Z");
    expect(config.config.User).toBe("1000:1000");
    expect(config.config.Entrypoint).toEqual(["/cnb/process/web"]);
    expect(config.config.WorkingDir).toBe("/workspace");
    expect(config.config.Env).toContain("CNB_LAYERS_DIR=/layers");
    expect(config.config.Env.find((e) => e.startsWith("PATH="))).toMatch(/^PATH=\/cnb\/process:/);
    const labels = config.config.Labels;
    expect(labels["org.opencontainers.image.revision"]).toBe("0123456789abcdef0123456789abcdef01234567");
    expect(labels["org.example.built-by"]).toBe("test");
    const lifecycle = JSON.parse(labels["io.buildpacks.lifecycle.metadata"] ?? "{}") as {
      buildpacks: { key: string; layers: Record<string, { sha: string }> }[];
    };
    expect(lifecycle.buildpacks[0]?.layers.site?.sha).toMatch(/^sha256:/);
    expect(text).not.toContain("tok@");
    expect(labels["org.opencontainers.image.source"]).toBe("https://gitlab.example/demo.git");
  });

  it("refuses a process type the build did not define", async () => {
    await expect(
      exportImage(registry.client(), request(result, { processType: "worker" })),
    ).rejects.toMatchObject({
      code: "export_failed",
    });
  });

  it("produces an image podman pulls by digest and runs as uid 1000, serving HTTP", async () => {
    const ref = `${registry.host}/tool-demo/web@${firstDigest}`;
    const creds = `${registry.username}:${registry.password}`;
    const name = `slipway-export-test-${randomBytes(4).toString("hex")}`;
    const port = await freePort();
    await run("podman", ["pull", "--quiet", "--tls-verify=false", "--creds", creds, ref], {
      env: PODMAN_ENV,
    });
    try {
      await run(
        "podman",
        [
          "run",
          "-d",
          "--name",
          name,
          "--cap-drop=all",
          "-p",
          `127.0.0.1:${port}:8000`,
          "-e",
          "PORT=8000",
          ref,
        ],
        { env: PODMAN_ENV },
      );
      const body = await waitFor200(`http://127.0.0.1:${port}/`, 30_000);
      expect(body).toContain("hello v1");
      const whoami = await (await fetch(`http://127.0.0.1:${port}/whoami.txt`)).text();
      expect(whoami.trim()).toBe("1000");
      const banner = await (await fetch(`http://127.0.0.1:${port}/banner.txt`)).text();
      expect(banner).toContain("from a launch layer");
    } finally {
      await run("podman", ["rm", "-f", "-t", "0", name], { env: PODMAN_ENV, allowFailure: true });
      await run("podman", ["rmi", "-f", ref], { env: PODMAN_ENV, allowFailure: true });
    }
  });
});

async function waitFor200(url: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return await res.text();
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = String(e);
    }
    await sleep(200);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (${last})`);
}
