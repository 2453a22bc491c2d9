import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, opendir, readFile, readlink } from "node:fs/promises";
import path from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { pack as tarPack, type Header, type Pack } from "tar-stream";

type TarHeader = Partial<Header> & Pick<Header, "name">;
import { SlipwayError } from "../../platform/errors.js";
import { ParallelGzip } from "./parallel-gzip.js";

/** The CNB normalised timestamp, 1980-01-01T00:00:01Z (lifecycle `archive.NormalizedModTime`). */
export const NORMALIZED_EPOCH = 315532801;

export const LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip";

/** A gzipped layer written to disk, with what the image config and manifest need to refer to it. */
export interface LayerBlob {
  /** sha256 of the uncompressed tar (the config's `rootfs.diff_ids`). */
  readonly diffId: string;
  /** sha256 of the gzip (the manifest's layer digest). */
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  readonly path: string;
}

export interface LayerOptions {
  /** Seconds since the epoch written as every entry's mtime. */
  readonly epoch?: number;
  /** Owner of every entry; the CNB user for buildpack and app layers, 0 for stack files. */
  readonly uid?: number;
  readonly gid?: number;
  /**
   * Symlinks written at the image root before the tree, owned by root (the app layer's `/app` →
   * `/workspace`). Names are top-level entries that sort before the tree's own root directory.
   */
  readonly rootLinks?: readonly { readonly name: string; readonly target: string }[];
}

/**
 * Writes `hostDir` as a layer whose contents appear at `imagePath` (with its parent directories), such
 * that the same tree always gives the same bytes: entries in name order, one owner, one mtime, no
 * user or group names, no setuid/setgid bits. Symlinks are stored as symlinks, target verbatim, and
 * never followed on the host, so a link to `/etc/passwd` reads nothing of this machine: in the container
 * it resolves inside the image (a venv's `bin/python3 -> /usr/bin/python3` is the ordinary case). Links
 * escaping a repository are refused earlier, when the source is checked out. Hard links become regular
 * files. Sockets, fifos and devices are left out.
 */
export async function writeLayer(
  hostDir: string,
  imagePath: string,
  outFile: string,
  options: LayerOptions = {},
) {
  return writeTar(outFile, layerEntries(hostDir, imagePath, options));
}

/**
 * The diff_id `writeLayer` would give the same tree, from the tar alone: no gzip, nothing written. A
 * fraction of the cost of compressing, so a layer whose content was compressed before (another tool's
 * identical Node.js layer) can be recognised before paying for it again.
 */
export async function layerDiffId(hostDir: string, imagePath: string, options: LayerOptions = {}) {
  const pack = tarPack();
  const tarHash = new HashingPassThrough();
  const hashing = pipeline(pack, tarHash, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) void chunk;
  });
  await fillPack(pack, hashing, layerEntries(hostDir, imagePath, options));
  return tarHash.digest();
}

function layerEntries(hostDir: string, imagePath: string, options: LayerOptions) {
  const root = normaliseImagePath(imagePath);
  const owner = { uid: options.uid ?? 1000, gid: options.gid ?? 1000 };
  return async (pack: Pack) => {
    const mtime = new Date((options.epoch ?? NORMALIZED_EPOCH) * 1000);
    for (const link of options.rootLinks ?? []) {
      await addEntry(pack, {
        name: link.name,
        type: "symlink",
        linkname: link.target,
        mode: 0o777,
        mtime,
        uid: 0,
        gid: 0,
      });
    }
    const parents = root.split("/").filter(Boolean);
    for (let i = 1; i < parents.length; i++) {
      await addEntry(pack, {
        name: parents.slice(0, i).join("/") + "/",
        type: "directory",
        mode: 0o755,
        mtime,
        ...owner,
      });
    }
    await walk(pack, hostDir, root, { mtime, owner: () => owner });
  };
}

/**
 * Writes a whole root filesystem as one layer (the run image's base), keeping owners as they are on
 * disk (the rootfs was made by debootstrap as root) but normalising everything else as `writeLayer`
 * does, with the fixed CNB timestamp so the layer does not change from commit to commit.
 */
export async function writeRootfsLayer(rootfs: string, outFile: string): Promise<LayerBlob> {
  return writeTar(outFile, async (pack) => {
    await walk(pack, rootfs, "/", {
      mtime: new Date(NORMALIZED_EPOCH * 1000),
      owner: (st) => ({ uid: st.uid, gid: st.gid }),
    });
  });
}

interface WalkOptions {
  readonly mtime: Date;
  readonly owner: (st: { uid: number; gid: number }) => { uid: number; gid: number };
}

/** Depth-first, children in name order, so parents always precede their contents. */
async function walk(pack: Pack, hostPath: string, imagePath: string, options: WalkOptions): Promise<void> {
  const st = await lstat(hostPath);
  const name = imagePath.replace(/^\/+/, "");
  const common = { mode: normaliseMode(st.mode), mtime: options.mtime, ...options.owner(st) };
  if (st.isDirectory()) {
    // The image root itself ("/") has no entry of its own.
    if (name !== "") await addEntry(pack, { name: name + "/", type: "directory", ...common });
    const names: string[] = [];
    for await (const dirent of await opendir(hostPath)) names.push(dirent.name);
    names.sort(byteOrder);
    for (const child of names) {
      await walk(pack, path.join(hostPath, child), path.posix.join(imagePath, child), options);
    }
  } else if (st.isSymbolicLink()) {
    const target = await readlink(hostPath);
    await addEntry(pack, { name, type: "symlink", linkname: target, ...common });
  } else if (st.isFile()) {
    // Small files in one read: a stream per file costs more than the copy for the thousands of small
    // files a dependency layer holds.
    if (st.size <= SMALL_FILE)
      await addBuffer(pack, { name, type: "file", ...common }, await readFile(hostPath));
    else await addFile(pack, { name, type: "file", size: st.size, ...common }, hostPath);
  }
}

/** Streams tar → sha256 (diff_id) → gzip → sha256 + byte count (digest, size) → file. */
async function writeTar(outFile: string, fill: (pack: Pack) => Promise<void>): Promise<LayerBlob> {
  const pack = tarPack();
  const tarHash = new HashingPassThrough();
  const gzHash = new HashingPassThrough();
  // A fixed level, block size and header: the same tar always compresses to the same bytes (with the
  // same zlib; a Node upgrade that changes zlib's output would change digests once).
  const gzip = new ParallelGzip(6);
  const writing = pipeline(pack, tarHash, gzip, gzHash, createWriteStream(outFile));
  await fillPack(pack, writing, fill);
  return {
    diffId: tarHash.digest(),
    digest: gzHash.digest(),
    size: gzHash.bytes,
    mediaType: LAYER_MEDIA_TYPE,
    path: outFile,
  };
}

async function fillPack(
  pack: Pack,
  writing: Promise<void>,
  fill: (pack: Pack) => Promise<void>,
): Promise<void> {
  try {
    await fill(pack);
    pack.finalize();
  } catch (e) {
    pack.destroy(e instanceof Error ? e : new Error(String(e)));
    await writing.catch(() => undefined);
    throw e;
  }
  await writing;
}

function addEntry(pack: Pack, header: TarHeader): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
}

const SMALL_FILE = 256 * 1024;

function addBuffer(pack: Pack, header: TarHeader, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, body, (err) => (err ? reject(err) : resolve()));
  });
}

async function addFile(pack: Pack, header: TarHeader, hostPath: string): Promise<void> {
  let sink!: NodeJS.WritableStream;
  // The entry callback fires once tar-stream has checked the byte count against the header.
  const written = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
  await Promise.all([pipeline(createReadStream(hostPath), sink), written]);
}

class HashingPassThrough extends Transform {
  private readonly hash: Hash = createHash("sha256");
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  digest(): string {
    return `sha256:${this.hash.digest("hex")}`;
  }
}

/** Permission bits and the sticky bit survive; setuid/setgid and the file-type bits do not. */
function normaliseMode(mode: number): number {
  return mode & 0o1777;
}

function normaliseImagePath(imagePath: string): string {
  const normal = path.posix.normalize("/" + imagePath);
  const trimmed = normal.length > 1 ? normal.replace(/\/+$/, "") : normal;
  if (trimmed.split("/").includes(".."))
    throw new SlipwayError("invalid_input", `bad image path ${imagePath}`);
  return trimmed;
}

/** Plain code-unit comparison, independent of the locale. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
