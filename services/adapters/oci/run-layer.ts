import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { SlipwayError } from "../../platform/errors.js";
import type { Stack } from "../../domain/lifecycle/types.js";
import { LAYER_MEDIA_TYPE, writeRootfsLayer, type LayerBlob } from "./layer.js";

const cachedSchema = z.object({
  diffId: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
});

/** Layers being written by this process, so concurrent callers write each one once. */
const inFlight = new Map<string, Promise<LayerBlob>>();

/**
 * The run image's root filesystem as one layer, computed once per stack and kept in
 * `<runRootfs>-layer/<stack id>.tar.gz` beside the rootfs (the stack id changes whenever the rootfs
 * would, so the cache never needs invalidating).
 */
export function runImageLayer(stack: Pick<Stack, "id" | "runRootfs">): Promise<LayerBlob> {
  const dir = path.resolve(stack.runRootfs).replace(/\/+$/, "") + "-layer";
  return cachedLayer(dir, stack.id, async (outFile) => {
    try {
      if (!(await stat(stack.runRootfs)).isDirectory()) throw new Error("not a directory");
    } catch (e) {
      throw new SlipwayError("stack_unavailable", `run image root filesystem ${stack.runRootfs} is missing`, {
        cause: e,
      });
    }
    return writeRootfsLayer(stack.runRootfs, outFile);
  });
}

/**
 * A layer kept as `<dir>/<id>.tar.gz` (with `<id>.json`), written by `write` the first time. `id` must
 * change whenever the layer's contents would (a content hash), so the cache never needs invalidating.
 */
export function cachedLayer(
  dir: string,
  id: string,
  write: (outFile: string) => Promise<LayerBlob>,
): Promise<LayerBlob> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id)) {
    throw new SlipwayError("stack_unavailable", `layer id ${JSON.stringify(id)} cannot name a cache file`);
  }
  const key = path.join(dir, id);
  let pending = inFlight.get(key);
  if (!pending) {
    pending = loadOrWrite(dir, id, write).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

async function loadOrWrite(
  dir: string,
  id: string,
  write: (outFile: string) => Promise<LayerBlob>,
): Promise<LayerBlob> {
  const blobPath = path.join(dir, `${id}.tar.gz`);
  const metaPath = path.join(dir, `${id}.json`);
  const cached = await readCached(blobPath, metaPath);
  if (cached) return cached;
  await mkdir(dir, { recursive: true });
  // Written under temporary names and renamed, blob first: the metadata file is the commit point, so
  // a crash or a second Slipway process never sees a half-written layer.
  const suffix = `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const blob = await write(blobPath + suffix);
    await rename(blobPath + suffix, blobPath);
    const meta = { diffId: blob.diffId, digest: blob.digest, size: blob.size };
    await writeFile(metaPath + suffix, JSON.stringify(meta) + "\n");
    await rename(metaPath + suffix, metaPath);
    return { ...meta, mediaType: LAYER_MEDIA_TYPE, path: blobPath };
  } finally {
    await rm(blobPath + suffix, { force: true });
    await rm(metaPath + suffix, { force: true });
  }
}

async function readCached(blobPath: string, metaPath: string): Promise<LayerBlob | undefined> {
  try {
    const meta = cachedSchema.parse(JSON.parse(await readFile(metaPath, "utf8")));
    if ((await stat(blobPath)).size !== meta.size) return undefined;
    return { ...meta, mediaType: LAYER_MEDIA_TYPE, path: blobPath };
  } catch {
    // Missing or damaged: write it again.
    return undefined;
  }
}
