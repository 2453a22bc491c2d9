import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient } from "../services/adapters/registry/client.js";
import { RegistryServer } from "../services/adapters/registry/server.js";
import { SlipwayError } from "../services/platform/errors.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";

let registry: TestRegistry;
let work: string;
beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(path.join(os.tmpdir(), "slipway-registry-test-"));
});
afterAll(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function blobFile(
  bytes: Buffer,
): Promise<{ digest: string; size: number; mediaType: string; file: string }> {
  const file = path.join(work, `${randomBytes(6).toString("hex")}.bin`);
  await writeFile(file, bytes);
  return { digest: sha256(bytes), size: bytes.length, mediaType: "application/octet-stream", file };
}

function manifestFor(
  config: { digest: string; size: number },
  layer: { digest: string; size: number },
): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
    }),
  );
}

describe("docker-registry server", () => {
  it("answers /v2/ with a Basic challenge and keeps its credentials private", async () => {
    const res = await fetch(`${registry.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Basic /);
    const ok = await fetch(`${registry.url}/v2/`, {
      headers: {
        authorization: `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString("base64")}`,
      },
    });
    expect(ok.status).toBe(200);
    expect((await stat(path.join(registry.dir, "credentials.json"))).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(registry.dir, "htpasswd"))).mode & 0o777).toBe(0o600);
  });

  it("keeps the same credentials and images across a restart", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-registry-restart-"));
    try {
      const first = await RegistryServer.start({ dir, port: 0 });
      const blob = await blobFile(randomBytes(1000));
      const c1 = RegistryClient.create({
        url: first.url,
        username: first.username,
        password: first.password,
      });
      await c1.pushBlob("slipway/run", blob, blob.file);
      await first.close();
      const second = await RegistryServer.start({ dir, port: 0 });
      try {
        expect(second.password).toBe(first.password);
        const c2 = RegistryClient.create({
          url: second.url,
          username: second.username,
          password: second.password,
        });
        expect(await c2.hasBlob("slipway/run", blob.digest)).toBe(true);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("RegistryClient against docker-registry", () => {
  it("uploads a blob once, streaming it from disk, then finds it", async () => {
    const client = registry.client();
    const blob = await blobFile(randomBytes(3 * 1024 * 1024));
    expect(await client.hasBlob("tool-a/web", blob.digest)).toBe(false);
    expect(await client.pushBlob("tool-a/web", blob, blob.file)).toBe(true);
    expect(await client.hasBlob("tool-a/web", blob.digest)).toBe(true);
    expect(await client.pushBlob("tool-a/web", blob, blob.file)).toBe(false);
  });

  it("mounts a blob from another repository instead of uploading it", async () => {
    const client = registry.client();
    const blob = await blobFile(randomBytes(4096));
    await client.pushBlob("slipway/run", blob, blob.file);
    expect(await client.hasBlob("tool-b/web", blob.digest)).toBe(false);
    expect(await client.mountBlob("tool-b/web", blob.digest, "slipway/run")).toBe(true);
    expect(await client.hasBlob("tool-b/web", blob.digest)).toBe(true);
    // A blob the source repository does not hold cannot be mounted; the caller uploads instead.
    expect(await client.mountBlob("tool-b/web", sha256(randomBytes(8)), "slipway/run")).toBe(false);
  });

  it("stores a manifest under a tag and returns the same bytes and digest by tag and by digest", async () => {
    const client = registry.client();
    const config = await blobFile(
      Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'),
    );
    const layer = await blobFile(randomBytes(100));
    await client.pushBlob("tool-c/web", config, config.file);
    await client.pushBlob("tool-c/web", layer, layer.file);
    const manifest = manifestFor(config, layer);
    const digest = await client.putManifest(
      "tool-c/web",
      "abc123",
      manifest,
      "application/vnd.oci.image.manifest.v1+json",
    );
    expect(digest).toBe(sha256(manifest));
    const byTag = await client.getManifest("tool-c/web", "abc123");
    expect(byTag?.digest).toBe(digest);
    expect(Buffer.from(byTag?.body ?? []).equals(manifest)).toBe(true);
    expect((await client.getManifest("tool-c/web", digest))?.digest).toBe(digest);
    expect(await client.getManifest("tool-c/web", "nope")).toBeUndefined();
  });

  it("names the registry's error code when a manifest refers to a missing blob", async () => {
    const client = registry.client();
    const config = await blobFile(Buffer.from("{}"));
    await client.pushBlob("tool-d/web", config, config.file);
    const manifest = manifestFor(config, { digest: sha256(Buffer.from("missing")), size: 7 });
    const err = await client
      .putManifest("tool-d/web", "t1", manifest, "application/vnd.oci.image.manifest.v1+json")
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlipwayError);
    expect((err as SlipwayError).code).toBe("export_failed");
    expect((err as Error).message).toContain("MANIFEST_BLOB_UNKNOWN");
  });

  it("fails clearly with a wrong password, naming the registry and its code", async () => {
    const client = RegistryClient.create({
      url: registry.url,
      username: registry.username,
      password: "wrong",
    });
    const blob = await blobFile(randomBytes(10));
    const err = await client.pushBlob("tool-e/web", blob, blob.file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlipwayError);
    expect((err as SlipwayError).code).toBe("unauthorized");
    expect((err as Error).message).toContain(registry.host);
    expect((err as Error).message).toContain("UNAUTHORIZED");
    expect((err as Error).message).not.toContain("wrong");
  });

  it("reports an unreachable registry as a transient error", async () => {
    const client = RegistryClient.create({ url: "http://127.0.0.1:9", username: "u", password: "p" });
    const err = await client.hasBlob("tool-f/web", sha256(Buffer.from("x"))).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "TransientError" });
  });
});

describe("RegistryClient token flow", () => {
  it("follows a Bearer challenge to the token service and retries with the token", async () => {
    const { createServer } = await import("node:http");
    const seen: { url: string; auth: string | undefined }[] = [];
    const server = createServer((req, res) => {
      seen.push({ url: req.url ?? "", auth: req.headers.authorization });
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      if (req.url?.startsWith("/token")) {
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ token: "tok-1", expires_in: 300 }));
      } else if (req.headers.authorization !== "Bearer tok-1") {
        res.statusCode = 401;
        res.setHeader(
          "www-authenticate",
          `Bearer realm="${base}/token",service="harbor-registry",scope="repository:tool-x/web:pull"`,
        );
        res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "unauthorized" }] }));
      } else {
        res.statusCode = req.url?.includes("/blobs/") ? 200 : 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const client = RegistryClient.create({
        url: `http://127.0.0.1:${port}`,
        username: "robot$x",
        password: "s3cret",
      });
      expect(await client.hasBlob("tool-x/web", "sha256:" + "0".repeat(64))).toBe(true);
      expect(await client.hasBlob("tool-x/web", "sha256:" + "1".repeat(64))).toBe(true);
      const tokenCalls = seen.filter((s) => s.url.startsWith("/token"));
      expect(tokenCalls).toHaveLength(1);
      expect(tokenCalls[0]?.url).toContain("service=harbor-registry");
      expect(decodeURIComponent(tokenCalls[0]?.url ?? "")).toContain("scope=repository:tool-x/web:pull");
      expect(tokenCalls[0]?.auth).toBe(`Basic ${Buffer.from("robot$x:s3cret").toString("base64")}`);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
