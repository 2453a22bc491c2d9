import { z } from "zod";
import type { Stack } from "../../domain/lifecycle/types.js";
import { SlipwayError, errorMessage } from "../../platform/errors.js";
import type { ImageRegistry } from "../../ports/registry.js";
import type { LayerBlob } from "./layer.js";
import { imageArchitecture, pushImage } from "./push-image.js";
import { runImageLayer } from "./run-layer.js";

/** A registry that can also hand out a small blob (the run image's config). */
export type RunImageRegistry = ImageRegistry & {
  getBlob(repository: string, digest: string): Promise<Uint8Array>;
};

const manifestSchema = z.object({
  config: z.object({ digest: z.string() }),
  layers: z.array(
    z.object({ digest: z.string(), size: z.number().int().nonnegative(), mediaType: z.string() }),
  ),
});
const configSchema = z.object({ rootfs: z.object({ diff_ids: z.array(z.string()) }) });

/**
 * Pushes the stack's run image (its root filesystem as one layer) as `<repository>:<tag>`, so an
 * exporter that has no rootfs (slipway-lifecycle export in a container, a Tekton step) can lay apps on
 * it by mounting its layer. The same stack gives the same digest: the layer is written deterministically.
 */
export async function pushRunImage(
  registry: ImageRegistry,
  stack: Pick<Stack, "id" | "runRootfs" | "uid" | "gid">,
  repository: string,
  tag: string = stack.id,
): Promise<string> {
  const layer = await runImageLayer(stack);
  const config = {
    architecture: imageArchitecture(),
    os: "linux",
    config: { User: `${stack.uid}:${stack.gid}`, Labels: { "io.buildpacks.stack.id": stack.id } },
    rootfs: { type: "layers", diff_ids: [layer.diffId] },
  };
  return (await pushImage(registry, repository, [layer], config, tag)).reference;
}

/**
 * The one layer of a run image in the registry, described as the exporter's base layer. It has no
 * local file (`path` is empty): the exporter mounts it from `repository`, never uploads it.
 */
export async function readRunImageLayer(
  registry: RunImageRegistry,
  repository: string,
  reference: string,
): Promise<LayerBlob> {
  const what = `run image ${registry.host}/${repository}:${reference}`;
  const found = await registry.getManifest(repository, reference);
  if (!found) throw new SlipwayError("export_failed", `${what} is not in the registry`);
  let manifest;
  let config;
  try {
    manifest = manifestSchema.parse(JSON.parse(Buffer.from(found.body).toString("utf8")));
    const configBytes = await registry.getBlob(repository, manifest.config.digest);
    config = configSchema.parse(JSON.parse(Buffer.from(configBytes).toString("utf8")));
  } catch (error) {
    if (error instanceof SlipwayError) throw error;
    throw new SlipwayError("export_failed", `${what} is not an OCI image: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  const [layer, ...more] = manifest.layers;
  const [diffId] = config.rootfs.diff_ids;
  if (!layer || more.length > 0 || !diffId)
    throw new SlipwayError(
      "export_failed",
      `${what} has ${manifest.layers.length} layers; Slipway lays apps on a run image of exactly one`,
    );
  return { digest: layer.digest, size: layer.size, mediaType: layer.mediaType, diffId, path: "" };
}
