import nodeFs from "node:fs";
import { mkdir, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { SlipwayError } from "../../platform/errors.js";
import git from "./isomorphic-git.js";

export interface CheckoutLimits {
  /** Sum of all regular files, in bytes. */
  readonly maxTotalBytes: number;
  readonly maxFileBytes: number;
}

export interface CheckoutResult {
  readonly files: number;
  readonly bytes: number;
  /** Paths of gitlinks (submodules); they are left as empty directories. */
  readonly submodules: readonly string[];
}

interface Plan {
  readonly dirs: string[];
  readonly files: { path: string; oid: string; executable: boolean }[];
  readonly links: Map<string, string>;
  readonly submodules: string[];
}

const WRITE_CONCURRENCY = 16;
const MAX_LINK_HOPS = 40;

/**
 * Writes the tree of a commit into `dest` without an index or `.git`, validating as it goes. It is our
 * own rather than isomorphic-git's `checkout` so that nothing is written before the whole tree has been
 * checked (names, symlink targets, submodules), symlinks are created last (so no file is ever written
 * through one), and the size limits stop the checkout at the first offending file.
 */
export async function checkoutTree(
  gitdir: string,
  cache: object,
  treeOid: string,
  dest: string,
  limits: CheckoutLimits,
  signal?: AbortSignal,
): Promise<CheckoutResult> {
  const fs = packOnlyFs(gitdir);
  const plan: Plan = { dirs: [], files: [], links: new Map(), submodules: [] };
  await walk(fs, gitdir, cache, treeOid, "", plan);
  for (const [link, target] of plan.links) {
    if (resolveLink(link, target, plan.links) === undefined) {
      throw new SlipwayError(
        "source_rejected",
        `symlink "${link}" points to "${target}", which is outside the repository; only relative links that stay inside it are allowed`,
        { details: { path: link, target } },
      );
    }
  }

  for (const dir of plan.dirs) await mkdir(path.join(dest, dir), { recursive: true });
  for (const sub of plan.submodules) await mkdir(path.join(dest, sub), { recursive: true });

  let bytes = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < plan.files.length) {
      signal?.throwIfAborted();
      const file = plan.files[next++]!;
      const { blob } = await git.readBlob({ fs, gitdir, oid: file.oid, cache });
      if (blob.byteLength > limits.maxFileBytes) {
        throw new SlipwayError(
          "source_rejected",
          `file "${file.path}" is ${formatBytes(blob.byteLength)}, over the ${formatBytes(limits.maxFileBytes)} limit for a single file`,
          { details: { path: file.path, size: blob.byteLength, limit: limits.maxFileBytes } },
        );
      }
      bytes += blob.byteLength;
      if (bytes > limits.maxTotalBytes) {
        throw new SlipwayError(
          "source_rejected",
          `the repository is over the ${formatBytes(limits.maxTotalBytes)} source size limit (reached at "${file.path}", ${formatBytes(blob.byteLength)})`,
          { details: { path: file.path, size: blob.byteLength, limit: limits.maxTotalBytes } },
        );
      }
      // "wx": never follow or overwrite something already there.
      await writeFile(path.join(dest, file.path), blob, {
        mode: file.executable ? 0o755 : 0o644,
        flag: "wx",
      });
    }
  };
  const workers = Array.from({ length: Math.min(WRITE_CONCURRENCY, plan.files.length) }, worker);
  // allSettled first so that no worker is still writing into dest when the caller cleans it up.
  const results = await Promise.allSettled(workers);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;

  for (const [link, target] of plan.links) await symlink(target, path.join(dest, link));
  return { files: plan.files.length, bytes, submodules: plan.submodules };
}

async function walk(
  fs: PackOnlyFs,
  gitdir: string,
  cache: object,
  oid: string,
  prefix: string,
  plan: Plan,
): Promise<void> {
  const { tree } = await git.readTree({ fs, gitdir, oid, cache });
  for (const entry of tree) {
    const rel = prefix === "" ? checkName(entry.path, prefix) : `${prefix}/${checkName(entry.path, prefix)}`;
    switch (entry.mode) {
      case "040000":
        plan.dirs.push(rel);
        await walk(fs, gitdir, cache, entry.oid, rel, plan);
        break;
      case "120000": {
        const { blob } = await git.readBlob({ fs, gitdir, oid: entry.oid, cache });
        plan.links.set(rel, Buffer.from(blob).toString("utf8"));
        break;
      }
      case "160000":
        plan.submodules.push(rel);
        break;
      default:
        // 100644, 100755 and the historical 100664 are all regular files.
        plan.files.push({ path: rel, oid: entry.oid, executable: entry.mode === "100755" });
    }
  }
}

type PackOnlyFs = { promises: typeof nodeFs.promises };

/**
 * A file-system view for reading a freshly fetched git directory, which holds packs and no loose objects.
 * For every object it reads, isomorphic-git probes whether `fs` returns promises (a failing `readFile()`),
 * stats the git directory, tries the loose object and lists `objects/pack`: four file-system calls per
 * blob, two of them failures, which cost more than the blob itself on a checkout of thousands of small
 * files. This view answers all four from memory.
 */
function packOnlyFs(gitdir: string): PackOnlyFs {
  const loose = `${gitdir}/objects/`;
  const packDir = path.join(gitdir, "objects/pack");
  const missing = Object.assign(new Error("no loose objects after a fetch"), { code: "ENOENT" });
  let packs: Promise<string[]> | undefined;
  let gitdirStat: Promise<nodeFs.Stats> | undefined;
  const promises = {
    ...nodeFs.promises,
    readFile: ((file: unknown, options?: unknown) =>
      typeof file !== "string" || (file.startsWith(loose) && !file.startsWith(`${loose}pack/`))
        ? Promise.reject(missing)
        : readFile(file, options as undefined)) as typeof nodeFs.promises.readFile,
    readdir: ((dir: string, options?: unknown) =>
      dir === packDir && options === undefined
        ? (packs ??= readdir(dir))
        : readdir(dir, options as undefined)) as typeof nodeFs.promises.readdir,
    stat: ((file: string, options?: unknown) =>
      file === gitdir && options === undefined
        ? (gitdirStat ??= stat(file))
        : stat(file, options as undefined)) as typeof nodeFs.promises.stat,
  };
  return { promises };
}

/** Tree entry names come from the pusher; git's own fsck rules, enforced here because a remote may not. */
function checkName(name: string, parent: string): string {
  if (
    name === "" ||
    name === "." ||
    name === ".." ||
    name.includes("/") ||
    name.includes("\0") ||
    name.toLowerCase() === ".git"
  ) {
    const where = parent === "" ? "the repository root" : `"${parent}"`;
    throw new SlipwayError(
      "source_rejected",
      `the tree has an entry named "${name}" in ${where}, which git itself refuses`,
      {
        details: { path: parent === "" ? name : `${parent}/${name}` },
      },
    );
  }
  return name;
}

/**
 * Where a symlink ends up, relative to the repository root, following other symlinks of the same tree;
 * `undefined` when it escapes the root (absolute target, too many `..`, or a loop). Resolution is done on
 * the tree, not with `realpath` on disk, because a chain of individually harmless links (`d/up -> ..`,
 * `d/x -> up/..`) can still escape, and dangling links must be judged too.
 */
export function resolveLink(
  link: string,
  target: string,
  links: ReadonlyMap<string, string>,
): string | undefined {
  let hops = 0;
  const follow = (base: string[], relTarget: string): string[] | undefined => {
    if (++hops > MAX_LINK_HOPS || relTarget.startsWith("/") || relTarget.includes("\0")) return undefined;
    const out = [...base];
    for (const part of relTarget.split("/")) {
      if (part === "" || part === ".") continue;
      if (part === "..") {
        if (out.length === 0) return undefined;
        out.pop();
        continue;
      }
      out.push(part);
      const next = links.get(out.join("/"));
      if (next !== undefined) {
        const resolved = follow(out.slice(0, -1), next);
        if (resolved === undefined) return undefined;
        out.splice(0, out.length, ...resolved);
      }
    }
    return out;
  };
  const parts = link.split("/");
  const resolved = follow(parts.slice(0, -1), target);
  return resolved === undefined ? undefined : resolved.join("/");
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
