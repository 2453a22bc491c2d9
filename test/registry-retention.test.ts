import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { RegistryClient } from "../services/adapters/registry/client.js";
import { RegistryServer } from "../services/adapters/registry/server.js";

// Image retention's registry side, against a real docker-registry: a manifest deleted by digest is gone
// (with its tag), and the garbage collection run at the next start frees its blobs.

const sha256 = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("deleting an old release's image", () => {
  it("DELETE by digest removes the manifest and its tag; garbage collection at start frees the blobs", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-registry-gc-"));
    const client = (s: RegistryServer) =>
      RegistryClient.create({ url: s.url, username: s.username, password: s.password });
    try {
      const first = await RegistryServer.start({ dir, port: 0 });
      const c1 = client(first);
      const blobs = [
        Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'),
        randomBytes(2048),
      ].map((bytes, i) => ({
        bytes,
        digest: sha256(bytes),
        size: bytes.length,
        file: path.join(dir, `b${i}`),
      }));
      for (const b of blobs) {
        await writeFile(b.file, b.bytes);
        await c1.pushBlob(
          "tool-x/web",
          { digest: b.digest, size: b.size, mediaType: "application/octet-stream" },
          b.file,
        );
      }
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {
            mediaType: "application/vnd.oci.image.config.v1+json",
            digest: blobs[0]!.digest,
            size: blobs[0]!.size,
          },
          layers: [
            {
              mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
              digest: blobs[1]!.digest,
              size: blobs[1]!.size,
            },
          ],
        }),
      );
      const digest = await c1.putManifest(
        "tool-x/web",
        "c0ffee",
        manifest,
        "application/vnd.oci.image.manifest.v1+json",
      );

      expect(await c1.deleteManifest("tool-x/web", digest)).toBe(true);
      expect(await c1.getManifest("tool-x/web", digest)).toBeUndefined();
      expect(await c1.getManifest("tool-x/web", "c0ffee")).toBeUndefined();
      expect(await c1.deleteManifest("tool-x/web", digest)).toBe(false);
      // The blobs stay until garbage collection…
      expect(await c1.hasBlob("tool-x/web", blobs[1]!.digest)).toBe(true);
      await first.close();

      // …which runs before the registry serves again.
      const second = await RegistryServer.start({ dir, port: 0, garbageCollect: true });
      try {
        expect(await client(second).hasBlob("tool-x/web", blobs[1]!.digest)).toBe(false);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
