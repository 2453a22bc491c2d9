import {
  appendFile,
  chown,
  copyFile,
  mkdir,
  readFile,
  readdir,
  realpath,
  rm,
  writeFile,
} from "node:fs/promises";
import path from "node:path";
import { run } from "../../platform/process.js";

/** The non-root user builds and apps run as, the same in both images. */
export const CNB_USER = { name: "cnb", uid: 1000, gid: 1000, home: "/home/cnb" } as const;

export interface RootfsSpec {
  readonly dir: string;
  readonly packages: readonly string[];
  readonly mirror: string;
  readonly suite: string;
  readonly caBundle: string | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onLine?: ((line: string) => void) | undefined;
  /** Called when debootstrap is done and the tree is being made Slipway's. */
  readonly onPrepare?: (() => void) | undefined;
}

/**
 * Builds a Debian root filesystem with debootstrap (minbase: only Essential and Priority required
 * packages plus `packages`), then makes it Slipway's: the host's CA bundle (this machine's HTTPS goes
 * through an intercepting proxy, and tools must trust what the host trusts), a `cnb` user, and none of
 * the host's identity. Must run as root.
 */
export async function buildRootfs(spec: RootfsSpec): Promise<void> {
  await clearRootfs(spec.dir);
  await mkdir(spec.dir, { recursive: true });
  await run(
    "debootstrap",
    [
      "--variant=minbase",
      `--include=${spec.packages.join(",")}`,
      "--components=main",
      spec.suite,
      spec.dir,
      spec.mirror,
    ],
    {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", DEBIAN_FRONTEND: "noninteractive" },
      signal: spec.signal,
      onLine: spec.onLine ? (line) => spec.onLine?.(line) : undefined,
    },
  );
  spec.onPrepare?.();
  if (spec.caBundle) {
    await copyFile(spec.caBundle, path.join(spec.dir, "etc/ssl/certs/ca-certificates.crt"));
  }
  await addUser(spec.dir);
  await forgetHost(spec.dir);
  await strip(spec.dir);
}

/**
 * Removes a tree left by an earlier build. A debootstrap killed part-way (a crashed or SIGKILLed
 * builder) leaves the proc (and sys) it mounted inside the tree: removing it then fails with EBUSY on
 * every later start, or walks into the host's sysfs. So whatever is mounted under `dir` is unmounted
 * first, deepest first. Returns the mount points it unmounted.
 */
export async function clearRootfs(dir: string): Promise<string[]> {
  const root = await realpath(dir).catch(() => path.resolve(dir));
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8").catch(() => "");
  const points = mountinfo
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => point !== undefined)
    // mountinfo escapes space, tab, newline and backslash as octal (\040 …).
    .map((point) =>
      point.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))),
    )
    .filter((point) => point.startsWith(`${root}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of points) await run("umount", ["--lazy", point]);
  await rm(root, { recursive: true, force: true });
  return points;
}

/** Writes the passwd/group/shadow entries directly: no chroot, so nothing runs inside the new tree. */
async function addUser(root: string): Promise<void> {
  const { name, uid, gid, home } = CNB_USER;
  await appendFile(
    path.join(root, "etc/passwd"),
    `${name}:x:${uid}:${gid}:Cloud Native Buildpacks:${home}:/bin/bash\n`,
  );
  await appendFile(path.join(root, "etc/group"), `${name}:x:${gid}:\n`);
  await appendFile(path.join(root, "etc/shadow"), `${name}:!:19000:0:99999:7:::\n`);
  await appendFile(path.join(root, "etc/gshadow"), `${name}:!::\n`).catch(() => undefined);
  const homeDir = path.join(root, home);
  await mkdir(homeDir, { recursive: true });
  await chown(homeDir, uid, gid);
}

/** debootstrap copies the host's resolver and name; podman provides both at run time. */
async function forgetHost(root: string): Promise<void> {
  for (const f of ["etc/resolv.conf", "etc/hostname", "etc/hosts"]) {
    await rm(path.join(root, f), { force: true });
  }
  await writeFile(path.join(root, "etc/hostname"), "localhost\n");
  await writeFile(path.join(root, "etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n");
  await writeFile(path.join(root, "etc/machine-id"), "");
}

/**
 * Removes what no build or app reads: apt's package lists and downloaded .debs (the lists are
 * re-fetched by anything that installs packages), documentation, man pages, translations and logs.
 * Copyright files are kept for licence compliance.
 */
async function strip(root: string): Promise<void> {
  const clear = [
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/linda",
    "var/cache/debconf/templates.dat-old",
    "var/log",
    "tmp",
    "var/tmp",
  ];
  for (const rel of clear) await emptyDir(path.join(root, rel));
  const docs = path.join(root, "usr/share/doc");
  for (const pkg of await readdir(docs).catch(() => [] as string[])) {
    const dir = path.join(docs, pkg);
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      if (entry !== "copyright") await rm(path.join(dir, entry), { recursive: true, force: true });
    }
  }
  await rm(path.join(root, "var/cache/ldconfig/aux-cache"), { force: true });
}

async function emptyDir(dir: string): Promise<void> {
  for (const entry of await readdir(dir).catch(() => [] as string[])) {
    await rm(path.join(dir, entry), { recursive: true, force: true });
  }
}

/** Size in bytes of a directory tree, as `du` counts it (used for progress logs and the report). */
export async function treeSize(dir: string): Promise<number> {
  const r = await run("du", ["-sb", dir], { env: { PATH: "/usr/bin:/bin" } });
  return Number(r.stdout.split("\t")[0] ?? 0);
}
