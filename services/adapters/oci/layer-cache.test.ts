import {
  copyFile,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LayerCache } from "./layer-cache.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "slipway-layer-cache-"));
  await mkdir(path.join(dir, "src", "lib"), { recursive: true });
  await writeFile(path.join(dir, "src", "lib", "a.js"), "a");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("LayerCache", () => {
  it("reuses the written layer while the directory is untouched", async () => {
    const cache = LayerCache.create(path.join(dir, "cache"));
    const first = await cache.layer(path.join(dir, "src"), "/layers/x/y");
    const written = (await stat(first.path)).mtimeMs;
    const second = await LayerCache.create(path.join(dir, "cache")).layer(
      path.join(dir, "src"),
      "/layers/x/y",
    );
    expect(second).toEqual(first);
    expect((await stat(second.path)).mtimeMs).toBe(written);
  });

  it("reuses the layer when the same files are hard-linked into a new directory, as a restored cache is", async () => {
    const cache = LayerCache.create(path.join(dir, "cache"));
    const first = await cache.layer(path.join(dir, "src"), "/layers/x/y");
    const written = (await stat(first.path)).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    await mkdir(path.join(dir, "restored", "lib"), { recursive: true });
    await link(path.join(dir, "src", "lib", "a.js"), path.join(dir, "restored", "lib", "a.js"));
    const second = await LayerCache.create(path.join(dir, "cache")).layer(
      path.join(dir, "restored"),
      "/layers/x/y",
    );
    expect(second).toEqual(first);
    expect((await stat(second.path)).mtimeMs).toBe(written);
  });

  it("reuses the layer when a big file is copied keeping its mtime to the second, as a cache restored from another volume is", async () => {
    const big = path.join(dir, "src", "lib", "node");
    await writeFile(big, Buffer.alloc(200_000, 7));
    // A file written just now has a nanosecond mtime; a copy keeps it to the whole second.
    await utimes(big, new Date(), new Date(Math.floor(Date.now() / 1000) * 1000 + 123.456));
    const cache = LayerCache.create(path.join(dir, "cache"));
    const first = await cache.layer(path.join(dir, "src"), "/layers/x/y");
    await mkdir(path.join(dir, "restored", "lib"), { recursive: true });
    for (const name of ["a.js", "node"]) {
      const copy = path.join(dir, "restored", "lib", name);
      await copyFile(path.join(dir, "src", "lib", name), copy);
      const seconds = Math.floor((await stat(path.join(dir, "src", "lib", name))).mtimeMs / 1000);
      await utimes(copy, seconds, seconds);
    }
    const again = LayerCache.create(path.join(dir, "cache"));
    expect(await again.layer(path.join(dir, "restored"), "/layers/x/y")).toEqual(first);
    expect(again.reused).toBe(1);
    // Rewritten later with the same size: another second, another layer.
    await utimes(path.join(dir, "restored", "lib", "node"), new Date(), new Date(Date.now() + 5000));
    const changed = LayerCache.create(path.join(dir, "cache"));
    await changed.layer(path.join(dir, "restored"), "/layers/x/y");
    expect(changed.reused).toBe(0);
  });

  it("takes a link in place of a cached blob or its record for a miss, never following it", async () => {
    const cache = LayerCache.create(path.join(dir, "cache"));
    const first = await cache.layer(path.join(dir, "src"), "/layers/x/y");
    // Something else of the blob's size the export could read (its push credential, say).
    const secret = path.join(dir, "secret");
    await writeFile(secret, Buffer.alloc(first.size, 1));
    await rm(first.path);
    await symlink(secret, first.path);
    const again = LayerCache.create(path.join(dir, "cache"));
    const second = await again.layer(path.join(dir, "src"), "/layers/x/y");
    expect(again.reused).toBe(0);
    expect(second.digest).toBe(first.digest);
    expect((await lstat(second.path)).isSymbolicLink()).toBe(false);
    // The record as a link to a copy of itself: a miss too.
    const meta = second.path.replace(/\.tar\.gz$/, ".json");
    await rename(meta, `${meta}.real`);
    await symlink(`${meta}.real`, meta);
    const third = LayerCache.create(path.join(dir, "cache"));
    await third.layer(path.join(dir, "src"), "/layers/x/y");
    expect(third.reused).toBe(0);
  });

  it("reuses the layer when a small file is rewritten with the same bytes", async () => {
    const cache = LayerCache.create(path.join(dir, "cache"));
    const first = await cache.layer(path.join(dir, "src"), "/layers/x/y");
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(path.join(dir, "src", "lib", "a.js"), "a");
    expect(await cache.layer(path.join(dir, "src"), "/layers/x/y")).toEqual(first);
  });

  it("writes a new layer when a file changes, even to the same size", async () => {
    const cache = LayerCache.create(path.join(dir, "cache"));
    const first = await cache.layer(path.join(dir, "src"), "/layers/x/y");
    await writeFile(path.join(dir, "src", "lib", "a.js"), "b");
    await utimes(path.join(dir, "src", "lib", "a.js"), new Date(), new Date(Date.now() + 5000));
    const second = await cache.layer(path.join(dir, "src"), "/layers/x/y");
    expect(second.digest).not.toBe(first.digest);
  });

  it("keys on the image path and owner too", async () => {
    const cache = LayerCache.create(path.join(dir, "cache"));
    const a = await cache.layer(path.join(dir, "src"), "/layers/x/y");
    const b = await cache.layer(path.join(dir, "src"), "/layers/x/z");
    const c = await cache.layer(path.join(dir, "src"), "/layers/x/y", { uid: 0, gid: 0 });
    expect(new Set([a.digest, b.digest, c.digest]).size).toBe(3);
  });

  it("prunes what the latest export did not use", async () => {
    await LayerCache.create(path.join(dir, "cache")).layer(path.join(dir, "src"), "/old");
    const cache = LayerCache.create(path.join(dir, "cache"));
    const kept = await cache.layer(path.join(dir, "src"), "/new");
    await cache.prune();
    const left = await readdir(path.join(dir, "cache"));
    expect(left.sort()).toEqual(
      [path.basename(kept.path), path.basename(kept.path).replace(".tar.gz", ".json")].sort(),
    );
  });
});

describe("LayerCache with a shared directory", () => {
  it("links another component's layer of the same content instead of compressing it again, and lets it go with its last user", async () => {
    const shared = path.join(dir, "shared");
    const a = LayerCache.create(path.join(dir, "a"), { shared });
    const first = await a.layer(path.join(dir, "src"), "/layers/x/y");
    // Another tool's build: the same files written afresh (new inodes and mtimes), so its own cache misses.
    await mkdir(path.join(dir, "other", "lib"), { recursive: true });
    await writeFile(path.join(dir, "other", "lib", "a.js"), "a");
    await utimes(path.join(dir, "other", "lib", "a.js"), new Date(), new Date(Date.now() + 5000));
    const b = LayerCache.create(path.join(dir, "b"), { shared });
    const second = await b.layer(path.join(dir, "other"), "/layers/x/y");
    expect({ ...second, path: "" }).toEqual({ ...first, path: "" });
    const [sa, sb] = await Promise.all([stat(first.path), stat(second.path)]);
    expect(sb.ino).toBe(sa.ino);

    // Different content is compressed, not matched.
    await writeFile(path.join(dir, "other", "lib", "a.js"), "b");
    const third = await LayerCache.create(path.join(dir, "b"), { shared }).layer(
      path.join(dir, "other"),
      "/layers/x/y",
    );
    expect(third.diffId).not.toBe(first.diffId);

    // Once neither component uses the first layer, the shared copy goes too.
    await LayerCache.create(path.join(dir, "a"), { shared }).prune();
    const c = LayerCache.create(path.join(dir, "b"), { shared });
    await c.layer(path.join(dir, "other"), "/layers/x/y");
    await c.prune();
    const left = await readdir(shared);
    expect(left.filter((n) => n.endsWith(".tar.gz"))).toEqual([`${third.diffId.slice(7)}.tar.gz`]);
  });
});
