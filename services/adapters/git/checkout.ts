import { writeFileSync } from "node:fs";
import { mkdir, symlink } from "node:fs/promises";
import path from "node:path";
import { SlipwayError } from "../../platform/errors.js";
import type { PackStore } from "./pack-store.js";

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

const MAX_LINK_HOPS = 40;

/**
 * Writes the tree of a commit into `dest` without an index or `.git`, validating as it goes. It is our
 * own rather than isomorphic-git's `checkout` so that nothing is written before the whole tree has been
 * checked (names, symlink targets, submodules), symlinks are created last (so no file is ever written
 * through one), and the size limits stop the checkout at the first offending file. Objects come from the
 * fetch's `PackStore`, inflated with Node's zlib straight from the pack.
 */
export async function checkoutTree(
  store: PackStore,
  treeOid: string,
  dest: string,
  limits: CheckoutLimits,
  signal?: AbortSignal,
): Promise<CheckoutResult> {
  const plan: Plan = { dirs: [], files: [], links: new Map(), submodules: [] };
  walk(store, treeOid, "", plan);
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

  // Blobs are inflated from the pack in memory and written synchronously: the fetch runs in a process of
  // its own (ProcessFetcher) with nothing else to do, and 8,000 small files cost several times more CPU
  // as 24,000 promise round-trips to the thread pool (open, write, close) than as plain system calls.
  let bytes = 0;
  for (const file of plan.files) {
    signal?.throwIfAborted();
    const blob = store.need(file.oid, "blob");
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
    writeFileSync(path.join(dest, file.path), blob, { mode: file.executable ? 0o755 : 0o644, flag: "wx" });
  }

  for (const [link, target] of plan.links) await symlink(target, path.join(dest, link));
  return { files: plan.files.length, bytes, submodules: plan.submodules };
}

function walk(store: PackStore, oid: string, prefix: string, plan: Plan): void {
  for (const entry of parseTree(store.need(oid, "tree"), prefix)) {
    const rel = prefix === "" ? checkName(entry.name, prefix) : `${prefix}/${checkName(entry.name, prefix)}`;
    switch (entry.kind) {
      case "dir":
        plan.dirs.push(rel);
        walk(store, entry.oid, rel, plan);
        break;
      case "link":
        plan.links.set(rel, store.need(entry.oid, "blob").toString("utf8"));
        break;
      case "submodule":
        plan.submodules.push(rel);
        break;
      case "file":
      case "executable":
        plan.files.push({ path: rel, oid: entry.oid, executable: entry.kind === "executable" });
    }
  }
}

interface TreeEntry {
  readonly kind: "dir" | "file" | "executable" | "link" | "submodule";
  readonly name: string;
  readonly oid: string;
}

/**
 * A tree object: `<octal mode> <name>\0<20-byte id>` entries. Modes are read as git and isomorphic-git
 * read them: the historical 100664 is a regular file, 100775 an executable one.
 */
export function parseTree(data: Buffer, where: string): TreeEntry[] {
  const entries: TreeEntry[] = [];
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    const nul = space < 0 ? -1 : data.indexOf(0, space);
    if (nul < 0 || nul + 21 > data.length) throw badTree(where, "an entry is cut short");
    const mode = data.toString("latin1", pos, space);
    const name = data.toString("utf8", space + 1, nul);
    const oid = data.toString("hex", nul + 1, nul + 21);
    pos = nul + 21;
    const kind = kindOf(mode);
    if (!kind) throw badTree(where, `"${name}" has the unknown mode ${mode}`);
    entries.push({ kind, name, oid });
  }
  return entries;
}

function kindOf(mode: string): TreeEntry["kind"] | undefined {
  if (/^0?4/.test(mode)) return "dir";
  if (mode.startsWith("1006")) return "file";
  if (mode.startsWith("1007")) return "executable";
  if (mode.startsWith("120")) return "link";
  if (mode.startsWith("160")) return "submodule";
  return undefined;
}

function badTree(where: string, what: string): SlipwayError {
  return new SlipwayError(
    "source_rejected",
    `the tree of ${where === "" ? "the repository root" : `"${where}"`} is malformed: ${what}`,
    { details: { path: where } },
  );
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
