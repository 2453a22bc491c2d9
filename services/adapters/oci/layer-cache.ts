import { createHash, randomBytes } from "node:crypto";
import { lstatSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { link, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import {
  LAYER_MEDIA_TYPE,
  NORMALIZED_EPOCH,
  layerDiffId,
  writeLayer,
  type LayerBlob,
  type LayerOptions,
} from "./layer.js";

/** Bump when the layer writer's output changes, so old entries are not reused. */
const FORMAT = "slipway-layer-v4";

/** Files up to this size are fingerprinted by content rather than by size and mtime. */
const SMALL_FILE = 64n * 1024n;

/** Entries the fingerprint walks between two turns of the event loop (a few milliseconds' worth). */
const YIELD_EVERY = 256;

const entrySchema = z.object({
  diffId: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
});

/**
 * Remembers the layers written for one tool component, keyed by a fingerprint of the directory
 * (every entry's path, type, mode, size, mtime and link target, plus the writer's options). A
 * dependency layer the buildpack left untouched is then not tarred and gzipped again on every build:
 * a stat walk instead of seconds of compression. The same heuristic as rsync: a big file rewritten
 * with the same size within the same second of mtime would be missed.
 */
export class LayerCache {
  private readonly used = new Set<string>();
  /** Layers this instance found unchanged and took from the cache, not tarred and gzipped again. */
  reused = 0;

  private constructor(
    private readonly dir: string,
    private readonly shared: string | undefined,
  ) {}

  /**
   * `shared`, when given, is one directory for every component of this installation: gzipped layers
   * by diff_id, hard-linked with the component caches that use them. A layer that misses here but
   * has the same content as one compressed before — the same Node.js version in another tool — is then
   * recognised by its tar's sha256 and linked instead of compressed again.
   */
  static create(dir: string, options: { shared?: string | undefined } = {}): LayerCache {
    return new LayerCache(dir, options.shared);
  }

  async layer(hostDir: string, imagePath: string, options: LayerOptions = {}): Promise<LayerBlob> {
    const key = await fingerprint(hostDir, imagePath, options);
    this.used.add(key);
    const blobPath = path.join(this.dir, `${key}.tar.gz`);
    const metaPath = path.join(this.dir, `${key}.json`);
    const hit = await readEntry(blobPath, metaPath);
    if (hit) {
      this.reused++;
      return hit;
    }
    await mkdir(this.dir, { recursive: true });
    const suffix = `.tmp-${randomBytes(4).toString("hex")}`;
    try {
      const diffId = this.shared ? await layerDiffId(hostDir, imagePath, options) : undefined;
      const known = diffId ? await this.linkShared(diffId, blobPath + suffix) : undefined;
      const blob = known ?? (await writeLayer(hostDir, imagePath, blobPath + suffix, options));
      await rename(blobPath + suffix, blobPath);
      // The metadata file is written last: it is what makes an entry visible.
      await writeEntry(metaPath, suffix, blob);
      // Shared only when both passes agree, so a tree that changed between them is never filed wrongly.
      if (!known && diffId === blob.diffId) await this.share(blobPath, blob, suffix);
      return { ...blob, path: blobPath };
    } finally {
      await rm(blobPath + suffix, { force: true });
      await rm(metaPath + suffix, { force: true });
    }
  }

  /** Hard-links the shared blob of `diffId` to `to`; undefined when there is none (or it just went). */
  private async linkShared(diffId: string, to: string): Promise<LayerBlob | undefined> {
    const name = sharedName(diffId);
    if (!this.shared || !name) return undefined;
    const entry = await readEntry(
      path.join(this.shared, `${name}.tar.gz`),
      path.join(this.shared, `${name}.json`),
    );
    if (!entry || entry.diffId !== diffId) return undefined;
    try {
      await link(entry.path, to);
    } catch (e) {
      // Swept by another build's prune between the read and the link: compress it after all.
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    }
    return { ...entry, path: to };
  }

  private async share(blobPath: string, blob: LayerBlob, suffix: string): Promise<void> {
    const name = sharedName(blob.diffId);
    if (!this.shared || !name) return;
    await mkdir(this.shared, { recursive: true });
    const sharedBlob = path.join(this.shared, `${name}.tar.gz`);
    await link(blobPath, sharedBlob + suffix);
    try {
      await rename(sharedBlob + suffix, sharedBlob);
      await writeEntry(path.join(this.shared, `${name}.json`), suffix, blob);
    } finally {
      await rm(sharedBlob + suffix, { force: true });
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
    if (this.shared) await sweepShared(this.shared);
  }
}

/** `<hex>` of `sha256:<hex>`, or undefined for anything else (it names a file). */
function sharedName(diffId: string): string | undefined {
  return /^sha256:([0-9a-f]{64})$/.exec(diffId)?.[1];
}

async function writeEntry(metaPath: string, suffix: string, blob: LayerBlob): Promise<void> {
  await writeFile(
    metaPath + suffix,
    JSON.stringify({ diffId: blob.diffId, digest: blob.digest, size: blob.size }),
  );
  await rename(metaPath + suffix, metaPath);
}

/**
 * A shared blob lives as long as some component's cache links it: one whose only link is the shared
 * name is no layer's any more and goes (its metadata first, so it stops being found before it is gone).
 */
async function sweepShared(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((n) => n.endsWith(".tar.gz"))
      .map(async (n) => {
        const st = await stat(path.join(dir, n)).catch(() => undefined);
        if (!st || st.nlink > 1) return;
        await rm(path.join(dir, n.replace(/\.tar\.gz$/, ".json")), { force: true });
        await rm(path.join(dir, n), { force: true });
      }),
  );
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
  // Depth first in name order with synchronous calls: a dependency layer has thousands of entries, and
  // one promise per stat and read made the walk five times slower (npm's 2,500 files: 0.3-0.5 s
  // against 65-85 ms). It yields to the event loop every few hundred entries, as the API may share
  // this process.
  const pending = [""];
  let sinceYield = 0;
  while (pending.length > 0) {
    const rel = pending.pop()!;
    const abs = path.join(hostDir, rel);
    const st = lstatSync(abs, { bigint: true });
    const extra = st.isSymbolicLink() ? readlinkSync(abs) : "";
    // Only what can change a file's bytes in the tar counts: directories and links are written with the
    // fixed mtime, and a restored cache layer is a fresh directory (new mtime) of hard-linked files.
    // Small files are hashed by content: buildpacks rewrite their env files on every build, with the
    // same bytes and a new mtime. Big ones by size and mtime in whole seconds, as rsync compares them:
    // a cache layer restored from another volume is a copy that keeps its mtime only to the second.
    let content = "";
    if (st.isFile())
      content =
        st.size <= SMALL_FILE
          ? createHash("sha256").update(readFileSync(abs)).digest("hex")
          : `${st.size}\0${st.mtimeNs / 1_000_000_000n}`;
    hash.update(`\n${rel}\0${st.mode}\0${content}\0${extra}`);
    if (st.isDirectory()) {
      const names = readdirSync(abs).sort();
      for (let i = names.length - 1; i >= 0; i--) pending.push(`${rel}/${names[i]}`);
    }
    if (++sinceYield >= YIELD_EVERY) {
      sinceYield = 0;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return hash.digest("hex");
}

async function readEntry(blobPath: string, metaPath: string): Promise<LayerBlob | undefined> {
  let text: string;
  try {
    // Not a regular file (a link, a FIFO that would block the read): a miss.
    if (!(await lstat(metaPath)).isFile()) return undefined;
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
  // lstat: a link where a blob should be (to a credential the export can read, say) is a miss, never
  // followed and pushed.
  const size = await lstat(blobPath).then(
    (s) => (s.isFile() ? s.size : -1),
    () => -1,
  );
  if (size !== parsed.data.size) return undefined;
  return { ...parsed.data, mediaType: LAYER_MEDIA_TYPE, path: blobPath };
}
