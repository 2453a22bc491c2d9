import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BlobRef, ImageRegistry } from "../../ports/registry.js";
import { LAYER_MEDIA_TYPE, type LayerBlob } from "./layer.js";
import { pushImage } from "./push-image.js";

/** A registry in memory that checks each blob's bytes against its digest, as a real one does. */
class MemoryRegistry implements ImageRegistry {
  readonly host = "registry.test";
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, Buffer>();
  hasBlob(_repository: string, digest: string): Promise<boolean> {
    return Promise.resolve(this.blobs.has(digest));
  }
  async pushBlob(_repository: string, blob: BlobRef, file: string): Promise<boolean> {
    if (this.blobs.has(blob.digest)) return false;
    const bytes = await readFile(file);
    if (sha256(bytes) !== blob.digest || bytes.length !== blob.size) throw new Error("digest mismatch");
    this.blobs.set(blob.digest, bytes);
    return true;
  }
  mountBlob(): Promise<boolean> {
    return Promise.resolve(false);
  }
  putManifest(repository: string, tag: string, manifest: Uint8Array): Promise<string> {
    this.manifests.set(`${repository}:${tag}`, Buffer.from(manifest));
    return Promise.resolve(sha256(manifest));
  }
  getManifest(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

let dir: string;
let layer: LayerBlob;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "slipway-push-image-"));
  const bytes = Buffer.from("a layer's bytes");
  await writeFile(path.join(dir, "layer"), bytes);
  layer = {
    diffId: sha256(Buffer.from("its tar")),
    digest: sha256(bytes),
    size: bytes.length,
    mediaType: LAYER_MEDIA_TYPE,
    path: path.join(dir, "layer"),
  };
});

afterEach(() => rm(dir, { recursive: true, force: true }));

const config = (user: string) => ({
  os: "linux",
  config: { User: user },
  rootfs: { diff_ids: [layer.diffId] },
});

describe("pushImage", () => {
  it("tags by the manifest's digest: the same contents give the same reference and send nothing again", async () => {
    const registry = new MemoryRegistry();
    const first = await pushImage(registry, "slipway/build", [layer], config("1000:1000"));
    expect(first.reference).toBe(`registry.test/slipway/build:${first.digest.slice(7, 23)}`);
    expect(first.uploaded).toBe(2);
    const again = await pushImage(registry, "slipway/build", [layer], config("1000:1000"));
    expect(again).toEqual({ ...first, uploaded: 0 });
    const other = await pushImage(registry, "slipway/build", [layer], config("0:0"));
    expect(other.reference).not.toBe(first.reference);
    expect(other.uploaded).toBe(1);
  });

  it("keeps a given tag", async () => {
    const pushed = await pushImage(
      new MemoryRegistry(),
      "slipway/run",
      [layer],
      config("1000:1000"),
      "stack-1",
    );
    expect(pushed.reference).toBe("registry.test/slipway/run:stack-1");
  });
});
