import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { ImageRegistry } from "../../ports/registry.js";
import { CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, canonicalJson, imageManifest } from "./image.js";
import type { LayerBlob } from "./layer.js";

/** What `pushImage` stored. */
export interface PushedImage {
  /** `<host>/<repository>:<tag>`, as a cluster or podman pulls it. */
  readonly reference: string;
  /** sha256:… of the manifest. */
  readonly digest: string;
  /** Blobs (layers and config) the registry did not have and was sent. */
  readonly uploaded: number;
}

/**
 * Pushes an image of `layers` (each from its local file; blobs the repository has are not sent again)
 * with the image config `config`, as `<repository>:<tag>`. Without a tag, the tag is the first 16 hex
 * digits of the manifest's digest, so the same contents always get the same reference. The config is
 * written canonically and should hold no timestamps: the same inputs give the same digest.
 */
export async function pushImage(
  registry: ImageRegistry,
  repository: string,
  layers: readonly LayerBlob[],
  config: unknown,
  tag?: string,
): Promise<PushedImage> {
  let uploaded = 0;
  for (const layer of layers) if (await registry.pushBlob(repository, layer, layer.path)) uploaded++;
  const configBytes = Buffer.from(canonicalJson(config));
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-image-config-"));
  try {
    const configBlob = {
      digest: `sha256:${createHash("sha256").update(configBytes).digest("hex")}`,
      size: configBytes.length,
      mediaType: CONFIG_MEDIA_TYPE,
    };
    await writeFile(path.join(dir, "config.json"), configBytes);
    if (await registry.pushBlob(repository, configBlob, path.join(dir, "config.json"))) uploaded++;
    const manifest = Buffer.from(canonicalJson(imageManifest(configBlob, layers)));
    const contentTag = createHash("sha256").update(manifest).digest("hex").slice(0, 16);
    const finalTag = tag ?? contentTag;
    const digest = await registry.putManifest(repository, finalTag, manifest, MANIFEST_MEDIA_TYPE);
    return { reference: `${registry.host}/${repository}:${finalTag}`, digest, uploaded };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The image config's `architecture` for this machine (the stack is built for it). */
export function imageArchitecture(): string {
  return process.arch === "arm64" ? "arm64" : "amd64";
}
