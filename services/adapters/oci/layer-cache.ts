import { createHash, randomBytes } from "node:crypto";
import {
  mkdir,
  opendir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  writeFile,
  lstat,
} from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import {
  LAYER_MEDIA_TYPE,
  NORMALIZED_EPOCH,
  writeLayer,
  type LayerBlob,
  type LayerOptions,
} from "./layer.js";

/** Bump when the layer writer's output changes, so old entries are not reused. */
const FORMAT = "slipway-layer-v3";

/** Files up to this size are fingerprinted by content rather than by size and mtime. */
const SMALL_FILE = 64n * 1024n;

const entrySchema = z.object({
  diffId: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
});

/**
 * Remembers the layers written for one tool component, keyed by a fingerprint of the directory
 * (every entry's path, type, mode, size, mtime and link target, plus the writer's options). A
 * dependency layer the buildpack left untouched is then not tarred and gzipped again on every build:
 * a stat walk instead of seconds of compression. The same heuristic as rsync and make: a file
 * rewritten with the same size and nanosecond mtime would be missed.
 */
export class LayerCache {
  private readonly used = new Set<string>();

  private constructor(private readonly dir: string) {}

  static create(dir: string): LayerCache {
    return new LayerCache(dir);
  }

  async layer(hostDir: string, imagePath: string, options: LayerOptions = {}): Promise<LayerBlob> {
    const key = await fingerprint(hostDir, imagePath, options);
    this.used.add(key);
    const blobPath = path.join(this.dir, `${key}.tar.gz`);
    const metaPath = path.join(this.dir, `${key}.json`);
    const hit = await readEntry(blobPath, metaPath);
    if (hit) return hit;
    await mkdir(this.dir, { recursive: true });
    const suffix = `.tmp-${randomBytes(4).toString("hex")}`;
    try {
      const blob = await writeLayer(hostDir, imagePath, blobPath + suffix, options);
      await rename(blobPath + suffix, blobPath);
      // The metadata file is written last: it is what makes an entry visible.
      await writeFile(
        metaPath + suffix,
        JSON.stringify({ diffId: blob.diffId, digest: blob.digest, size: blob.size }),
      );
      await rename(metaPath + suffix, metaPath);
      return { ...blob, path: blobPath };
    } finally {
      await rm(blobPath + suffix, { force: true });
      await rm(metaPath + suffix, { force: true });
    }
  }

  /** Removes every entry this instance did not use: only the latest build's layers are worth keeping. */
  async prune(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    const stale = names.filter((n) => !this.used.has(n.replace(/\.(tar\.gz|json)$/, "")));
    await Promise.all(stale.map((n) => rm(path.join(this.dir, n), { force: true })));
  }
}

async function fingerprint(hostDir: string, imagePath: string, options: LayerOptions): Promise<string> {
  const hash = createHash("sha256");
  hash.update(
    JSON.stringify([
      FORMAT,
      imagePath,
      options.uid ?? 1000,
      options.gid ?? 1000,
      options.epoch ?? NORMALIZED_EPOCH,
    ]),
  );
  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await lstat(abs, { bigint: true });
    let extra = "";
    if (st.isSymbolicLink()) extra = await readlink(abs);
    // Only what can change a file's bytes in the tar counts: directories and links are written with the
    // fixed mtime, and a restored cache layer is a fresh directory (new mtime) of hard-linked files.
    // Small files are hashed by content: buildpacks rewrite their env files on every build, with the
    // same bytes and a new mtime.
    let content = "";
    if (st.isFile()) {
      content =
        st.size <= SMALL_FILE
          ? createHash("sha256")
              .update(await readFile(abs))
              .digest("hex")
          : `${st.size}\0${st.mtimeNs}`;
    }
    hash.update(`\n${rel}\0${st.mode}\0${content}\0${extra}`);
    if (!st.isDirectory()) return;
    const names: string[] = [];
    for await (const d of await opendir(abs)) names.push(d.name);
    names.sort();
    for (const name of names) await visit(path.join(abs, name), `${rel}/${name}`);
  };
  await visit(hostDir, "");
  return hash.digest("hex");
}

async function readEntry(blobPath: string, metaPath: string): Promise<LayerBlob | undefined> {
  let text: string;
  try {
    text = await readFile(metaPath, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = entrySchema.safeParse(json);
  // A damaged entry (or a blob someone removed) is a miss: it is written again.
  if (!parsed.success) return undefined;
  const size = await stat(blobPath).then(
    (s) => s.size,
    () => -1,
  );
  if (size !== parsed.data.size) return undefined;
  return { ...parsed.data, mediaType: LAYER_MEDIA_TYPE, path: blobPath };
}
