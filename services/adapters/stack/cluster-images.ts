import { mkdtemp, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { Stack } from "../../domain/lifecycle/types.js";
import { SlipwayError, errorMessage } from "../../platform/errors.js";
import type { ImageRegistry } from "../../ports/registry.js";
import { LAYER_MEDIA_TYPE, writeLayer, type LayerBlob } from "../oci/layer.js";
import { imageArchitecture, pushImage, type PushedImage } from "../oci/push-image.js";
import { pushRunImage } from "../oci/run-image.js";
import { cachedLayer } from "../oci/run-layer.js";
import { podman } from "../podman/podman.js";
import { LIFECYCLE_MOUNT } from "./lifecycle-dir.js";

/** The build image's PATH: the base image's, after /cnb/bin so the Tasks' `command: ["slipway-lifecycle"]` resolves. */
export const CLUSTER_BUILD_PATH = `${LIFECYCLE_MOUNT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

/** The stack's images in a registry a cluster pulls from: the values of SLIPWAY_TEKTON_BUILD_IMAGE and _RUN_IMAGE. */
export interface ClusterImages {
  readonly build: PushedImage;
  readonly run: string;
}

/**
 * Pushes the stack's images for a cluster's Tasks (docs/tekton.md): the build image as two layers, the
 * podman build image's root filesystem and slipway-lifecycle's `/cnb` (`prepareLifecycleDir`), with
 * `/cnb/bin` on its PATH and the stack's user, to `slipway/build:<16 hex digits of its manifest digest>`;
 * and the run image to `slipway/run:<stack id>`. The same stack and lifecycle directory give the same
 * digests, and a second push sends no blob.
 */
export async function pushClusterImages(
  registry: ImageRegistry,
  stack: Stack,
  lifecycleDir: string,
  options: { readonly repoRoot: string; readonly stackDir: string },
): Promise<ClusterImages> {
  const base = await buildImageLayer(stack, options);
  const cnb = await lifecycleLayer(lifecycleDir);
  const config = {
    architecture: imageArchitecture(),
    os: "linux",
    config: {
      User: `${stack.uid}:${stack.gid}`,
      Env: [`PATH=${CLUSTER_BUILD_PATH}`],
      Labels: { "io.buildpacks.stack.id": stack.id },
    },
    rootfs: { type: "layers", diff_ids: [base.diffId, cnb.diffId] },
  };
  const build = await pushImage(registry, "slipway/build", [base, cnb], config);
  const run = await pushRunImage(registry, stack, "slipway/run");
  return { build, run };
}

/**
 * `/cnb` as a layer, root's and read-only for the build user (the Tasks run as the stack user and must
 * not change the lifecycle). Cached beside the directory: its name is already the hash of its contents.
 */
function lifecycleLayer(lifecycleDir: string): Promise<LayerBlob> {
  const dir = path.resolve(lifecycleDir);
  return cachedLayer(`${dir}-layer`, path.basename(dir), (outFile) =>
    writeLayer(dir, LIFECYCLE_MOUNT, outFile, { uid: 0, gid: 0 }),
  );
}

const indexSchema = z.object({ manifests: z.array(z.object({ digest: z.string() })).length(1) });
const manifestSchema = z.object({
  config: z.object({ digest: z.string() }),
  layers: z.array(
    z.object({ digest: z.string(), size: z.number().int().nonnegative(), mediaType: z.string() }),
  ),
});
const configSchema = z.object({ rootfs: z.object({ diff_ids: z.array(z.string()) }) });

/**
 * The podman build image's one layer (it is imported from a tarball), as podman saves it, kept under
 * `<stackDir>/build-<stack id>-layer/` by the image's ID: the same image always gives the same blob,
 * whatever a later podman's compressor would make of it.
 */
async function buildImageLayer(
  stack: Pick<Stack, "id" | "buildImage">,
  options: { readonly repoRoot: string; readonly stackDir: string },
): Promise<LayerBlob> {
  const inspected = await podman(["image", "inspect", "--format", "{{.Id}}", stack.buildImage], {
    repoRoot: options.repoRoot,
    allowFailure: true,
  });
  const imageId = inspected.stdout.trim();
  if (inspected.code !== 0 || !/^[0-9a-f]{64}$/.test(imageId))
    throw new SlipwayError("stack_unavailable", `build image ${stack.buildImage} is not in podman's storage`);
  const cacheDir = path.join(options.stackDir, `build-${stack.id}-layer`);
  return cachedLayer(cacheDir, imageId, async (outFile) => {
    const saved = await mkdtemp(path.join(options.stackDir, "build-save-"));
    try {
      const out = path.join(saved, "oci");
      await podman(["image", "save", "--quiet", "--format", "oci-dir", "-o", out, imageId], {
        repoRoot: options.repoRoot,
      });
      const blob = (digest: string) => path.join(out, "blobs", ...digest.split(":"));
      const json = async (digest: string) => JSON.parse(await readFile(blob(digest), "utf8")) as unknown;
      let layer;
      let diffId;
      try {
        const index = indexSchema.parse(JSON.parse(await readFile(path.join(out, "index.json"), "utf8")));
        const manifest = manifestSchema.parse(await json(index.manifests[0]!.digest));
        const config = configSchema.parse(await json(manifest.config.digest));
        [layer] = manifest.layers;
        [diffId] = config.rootfs.diff_ids;
        if (manifest.layers.length !== 1 || !layer || !diffId)
          throw new Error(`${manifest.layers.length} layers`);
      } catch (error) {
        throw new SlipwayError(
          "stack_unavailable",
          `build image ${stack.buildImage} is not the one-layer image the stack imports: ${errorMessage(error)}`,
          { cause: error },
        );
      }
      if (layer.mediaType !== LAYER_MEDIA_TYPE)
        throw new SlipwayError(
          "stack_unavailable",
          `podman saved the build image's layer as ${layer.mediaType}`,
        );
      await rename(blob(layer.digest), outFile);
      return { diffId, digest: layer.digest, size: layer.size, mediaType: LAYER_MEDIA_TYPE, path: outFile };
    } finally {
      await rm(saved, { recursive: true, force: true });
    }
  });
}
