import { constants, type Dirent } from "node:fs";
import { mkdir, open, readdir, type FileHandle } from "node:fs/promises";
import { InputError } from "./errors.js";

/**
 * File access under a directory that untrusted code can write to while Slipway, as root on the host,
 * reads or writes it: the build's layers and cache, which buildpack code (a project.toml inline script,
 * an npm install script) fills from inside the sandbox. Such code can put a symlink anywhere in that tree,
 * `launch.toml -> /etc/shadow` or `env -> /root`, and a plain readFile would follow it on the host and
 * hand the host's file to the tool (in an error message, an env var, the image). It can also swap a
 * directory for a symlink between two of Slipway's calls, since its background processes live on
 * until the sandbox is removed.
 *
 * So every path is resolved one component at a time from an open descriptor of `root` (which the
 * untrusted side cannot replace: it is the mount point), each step through `/proc/self/fd/<fd>/<name>`
 * with O_NOFOLLOW, as openat(2) would: the kernel looks the name up in the directory already opened,
 * never by path again, so no symlink, and no race, leads outside. Linux only, as podman is.
 *
 * A symlink where a file or directory is expected is an error naming the path; a missing one is ENOENT
 * as usual, which callers treat as absent.
 */

/** Files Slipway reads from a build (TOML, env values) are small; a bigger one is refused, not loaded. */
const MAX_READ_BYTES = 4 * 1024 * 1024;

const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;

/** Reads `rel` under `root` as UTF-8, following no symlink; a symlink, FIFO or device is refused. */
export async function readFileConfined(root: string, rel: string): Promise<string> {
  const parts = split(rel);
  const name = parts.pop()!;
  return withDir(root, parts, rel, async (dir) => {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer that never comes.
    const file = await openAt(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, rel);
    try {
      const info = await file.stat();
      if (!info.isFile()) throw notRegular(rel);
      if (info.size > MAX_READ_BYTES)
        throw new InputError(
          `${rel}: ${info.size} bytes, more than the ${MAX_READ_BYTES} a build file may have`,
        );
      return await file.readFile("utf8");
    } finally {
      await file.close();
    }
  });
}

/** Lists the directory `rel` under `root` (`""`: root itself), following no symlink on the way. */
export async function readdirConfined(root: string, rel: string): Promise<Dirent[]> {
  return withDir(root, split(rel), rel, (dir) => readdir(`/proc/self/fd/${dir.fd}`, { withFileTypes: true }));
}

/**
 * Writes `rel` under `root`, creating its directories, following no symlink: a symlink planted where the
 * file or one of its directories goes makes this fail instead of writing through it as root.
 */
export async function writeFileConfined(root: string, rel: string, content: string): Promise<void> {
  const parts = split(rel);
  const name = parts.pop()!;
  await withDir(
    root,
    parts,
    rel,
    async (dir) => {
      const file = await openAt(
        dir,
        name,
        O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK,
        rel,
        0o644,
      );
      try {
        if (!(await file.stat()).isFile()) throw notRegular(rel);
        await file.writeFile(content);
      } finally {
        await file.close();
      }
    },
    true,
  );
}

function split(rel: string): string[] {
  const parts = rel.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) throw new Error(`confined path ${rel} must not contain ..`);
  return parts;
}

/** Opens root, then each directory of `parts` inside the last, and runs `use` on the innermost. */
async function withDir<T>(
  root: string,
  parts: readonly string[],
  rel: string,
  use: (dir: FileHandle) => Promise<T>,
  create = false,
): Promise<T> {
  let dir = await open(root, O_RDONLY | O_DIRECTORY);
  try {
    for (const part of parts) {
      if (create) {
        // mkdir never follows a symlink in its last component (EEXIST); the open below then refuses it.
        await mkdir(`/proc/self/fd/${dir.fd}/${part}`).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== "EEXIST") throw error;
        });
      }
      const next = await openAt(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, rel);
      await dir.close();
      dir = next;
    }
    return await use(dir);
  } finally {
    await dir.close().catch(() => undefined);
  }
}

async function openAt(dir: FileHandle, name: string, flags: number, rel: string, mode?: number) {
  try {
    return await open(`/proc/self/fd/${dir.fd}/${name}`, flags, mode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ELOOP: the name is a symlink (O_NOFOLLOW); ENOTDIR: a file, or a symlink, where a directory goes.
    if (code === "ELOOP" || code === "ENOTDIR") throw notRegular(rel, error);
    throw error;
  }
}

function notRegular(rel: string, cause?: unknown): InputError {
  return new InputError(
    `${rel}: not a regular file or directory (a symlink?); buildpacks must write layer metadata and env files as regular files`,
    { cause },
  );
}
