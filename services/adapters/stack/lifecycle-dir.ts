import { createHash } from "node:crypto";
import { chmod, copyFile, cp, mkdir, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { builtinModules } from "node:module";
import path from "node:path";
import { SlipwayError } from "../../platform/errors.js";

/** The entry point's compiled file, relative to the repository. */
const ENTRY = "dist/services/lifecycle-main.js";
/** Where the prepared directory goes in the build image: /cnb/lib is where buildpacks find their helpers. */
export const LIFECYCLE_MOUNT = "/cnb";
/** The program's path in the build image. */
export const LIFECYCLE_PROGRAM = `${LIFECYCLE_MOUNT}/bin/slipway-lifecycle`;

/**
 * Prepares the directory that becomes `/cnb` in the stack's build image: slipway-lifecycle
 * (`bin/slipway-lifecycle`, a Node binary, the compiled files its entry point imports and only the
 * packages those import), Slipway's buildpacks (`slipway/buildpacks`, with `order.toml`) and their
 * shared helpers (`lib`). Locally it is bind-mounted read-only, so a code change rebuilds no image; for
 * a cluster it is the extra layer of the build image. Kept under `cacheDir` by the hash of what goes
 * in, so an unchanged checkout reuses it. `npm run build` must have run (dist/).
 */
export async function prepareLifecycleDir(options: {
  readonly repoRoot: string;
  readonly cacheDir: string;
  /** A Node binary that runs in the build image; this process's own by default (official builds need only glibc). */
  readonly nodeBinary?: string | undefined;
}): Promise<string> {
  const { repoRoot } = options;
  const nodeBinary = options.nodeBinary ?? process.execPath;
  const entry = path.join(repoRoot, ENTRY);
  await stat(entry).catch((error: unknown) => {
    throw new SlipwayError("stack_unavailable", `${ENTRY} is missing: run npm run build first`, {
      cause: error,
    });
  });
  const { files, packages } = await importClosure(repoRoot, entry);
  const packageDirs = await packageClosure(repoRoot, packages);
  const buildpacksDir = path.join(repoRoot, "buildpacks");
  const hash = createHash("sha256");
  hash.update(`node ${nodeBinary} ${(await stat(nodeBinary)).size}\n`);
  for (const file of [...files].sort())
    hash.update(`${path.relative(repoRoot, file)}\n`).update(await readFile(file));
  for (const dir of [...packageDirs].sort()) {
    const manifest = await readFile(path.join(dir, "package.json"), "utf8");
    hash.update(`${path.relative(repoRoot, dir)} ${(JSON.parse(manifest) as { version: string }).version}\n`);
  }
  for (const file of await listFiles(buildpacksDir)) hash.update(`${file}\n`).update(await readFile(file));
  const key = hash.digest("hex").slice(0, 16);
  const dir = path.join(options.cacheDir, `lifecycle-${key}`);
  if (
    await stat(dir).then(
      () => true,
      () => false,
    )
  )
    return dir;

  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  try {
    const app = path.join(tmp, "slipway", "app");
    for (const file of files) {
      const to = path.join(app, path.relative(repoRoot, file));
      await mkdir(path.dirname(to), { recursive: true });
      await copyFile(file, to);
    }
    for (const pkg of packageDirs)
      await cp(pkg, path.join(app, path.relative(repoRoot, pkg)), { recursive: true });
    await writeFile(path.join(app, "package.json"), JSON.stringify({ type: "module", private: true }) + "\n");
    await copyFile(nodeBinary, path.join(tmp, "slipway", "node"));
    await chmod(path.join(tmp, "slipway", "node"), 0o755);
    await cp(buildpacksDir, path.join(tmp, "slipway", "buildpacks"), {
      recursive: true,
      filter: (src) => path.relative(buildpacksDir, src) !== "lib",
    });
    await cp(path.join(buildpacksDir, "lib"), path.join(tmp, "lib"), { recursive: true });
    await mkdir(path.join(tmp, "bin"), { recursive: true });
    const program = path.join(tmp, "bin", "slipway-lifecycle");
    await writeFile(
      program,
      `#!/bin/sh\nexec ${LIFECYCLE_MOUNT}/slipway/node ${LIFECYCLE_MOUNT}/slipway/app/${ENTRY} "$@"\n`,
    );
    await chmod(program, 0o755);
    // Readable by the build image's non-root user whatever this process's umask.
    await openUp(tmp);
    await rename(tmp, dir);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    // Another process prepared the same directory meanwhile: theirs is as good.
    if (
      await stat(dir).then(
        () => true,
        () => false,
      )
    )
      return dir;
    throw error;
  }
  return dir;
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s(?:[^"';]*?\sfrom\s)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** The compiled files the entry point reaches by relative imports, and the packages they import. */
async function importClosure(
  repoRoot: string,
  entry: string,
): Promise<{ files: Set<string>; packages: Set<string> }> {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = await readFile(file, "utf8");
    for (const match of text.matchAll(IMPORT)) {
      const spec = match[1] ?? match[2] ?? "";
      if (spec.startsWith("node:")) continue;
      if (spec.startsWith(".")) queue.push(path.resolve(path.dirname(file), spec));
      else packages.add(packageName(spec));
    }
  }
  return { files, packages: new Set([...packages].filter((p) => !isBuiltin(p))) };
}

/** The packages' directories and, recursively, those of their dependencies. */
async function packageClosure(repoRoot: string, names: Iterable<string>): Promise<Set<string>> {
  const dirs = new Set<string>();
  const queue = [...names].map((name) => ({ name, from: repoRoot }));
  while (queue.length > 0) {
    const { name, from } = queue.pop()!;
    const dir = await findPackage(name, from, repoRoot);
    if (dir === undefined)
      throw new SlipwayError(
        "stack_unavailable",
        `package ${name} (needed by slipway-lifecycle) is not installed`,
      );
    if (dirs.has(dir) || [...dirs].some((d) => dir.startsWith(`${d}${path.sep}`))) continue;
    dirs.add(dir);
    const manifest = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies }))
      queue.push({ name: dep, from: dir });
  }
  return dirs;
}

/** Node's lookup: node_modules of the package's own directory, then of each parent up to the repository. */
async function findPackage(name: string, from: string, repoRoot: string): Promise<string | undefined> {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name);
    if (
      await stat(path.join(candidate, "package.json")).then(
        () => true,
        () => false,
      )
    )
      return candidate;
    if (dir === repoRoot || dir === path.dirname(dir)) return undefined;
  }
}

function packageName(spec: string): string {
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

function isBuiltin(name: string): boolean {
  return builtinModules.includes(name);
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(p)));
    else out.push(p);
  }
  return out.sort();
}

async function openUp(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await openUp(p);
    else if (entry.isFile()) await chmod(p, (await stat(p)).mode & 0o111 ? 0o755 : 0o644);
  }
}
