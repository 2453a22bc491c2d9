import { createHash } from "node:crypto";
import {
  chmod,
  chown,
  link,
  lutimes,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { extract, type Header } from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NORMALIZED_EPOCH, writeLayer, writeRootfsLayer } from "./layer.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "slipway-layer-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A small tree with a nested dir, an executable, a setuid file, an inside symlink and a hard link. */
async function makeTree(root: string): Promise<void> {
  await mkdir(path.join(root, "bin"), { recursive: true });
  await mkdir(path.join(root, "lib", "b"), { recursive: true });
  await writeFile(path.join(root, "bin", "node"), "#!/bin/sh\necho node\n");
  await chmod(path.join(root, "bin", "node"), 0o755);
  await writeFile(path.join(root, "lib", "b", "z.js"), "z");
  await writeFile(path.join(root, "lib", "a.js"), "a");
  await writeFile(path.join(root, "lib-x"), "sorted between lib and lib/...?");
  await writeFile(path.join(root, "suid"), "s");
  await chmod(path.join(root, "suid"), 0o4755);
  await symlink("../lib/a.js", path.join(root, "bin", "a"));
  await link(path.join(root, "lib", "a.js"), path.join(root, "hard.js"));
}

async function entries(file: string): Promise<{ header: Header; body: Buffer }[]> {
  const tarBytes = gunzipSync(await readFile(file));
  const out: { header: Header; body: Buffer }[] = [];
  const ex = extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on("entry", (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => chunks.push(c as Buffer));
      stream.on("end", () => {
        out.push({ header, body: Buffer.concat(chunks) });
        next();
      });
    });
    ex.on("finish", () => resolve());
    ex.on("error", reject);
  });
  ex.end(tarBytes);
  await done;
  return out;
}

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

describe("writeLayer", () => {
  it("writes parents first, then the tree depth-first in name order, with normalised headers", async () => {
    const src = path.join(dir, "src");
    await makeTree(src);
    const blob = await writeLayer(src, "/layers/slipway_nodejs/node", path.join(dir, "l.tgz"), {
      epoch: 1700000000,
    });
    const list = await entries(blob.path);
    expect(list.map((e) => e.header.name)).toEqual([
      "layers/",
      "layers/slipway_nodejs/",
      "layers/slipway_nodejs/node/",
      "layers/slipway_nodejs/node/bin/",
      "layers/slipway_nodejs/node/bin/a",
      "layers/slipway_nodejs/node/bin/node",
      "layers/slipway_nodejs/node/hard.js",
      "layers/slipway_nodejs/node/lib/",
      "layers/slipway_nodejs/node/lib/a.js",
      "layers/slipway_nodejs/node/lib/b/",
      "layers/slipway_nodejs/node/lib/b/z.js",
      "layers/slipway_nodejs/node/lib-x",
      "layers/slipway_nodejs/node/suid",
    ]);
    for (const { header } of list) {
      expect(header.uid).toBe(1000);
      expect(header.gid).toBe(1000);
      expect(header.mtime.getTime()).toBe(1700000000 * 1000);
      expect(header.uname).toBe("");
      expect(header.gname).toBe("");
      expect(header.mode & 0o6000).toBe(0);
    }
    const byName = new Map(list.map((e) => [e.header.name.replace("layers/slipway_nodejs/node/", ""), e]));
    expect(byName.get("bin/a")?.header).toMatchObject({ type: "symlink", linkname: "../lib/a.js" });
    expect(byName.get("bin/node")?.header.mode).toBe(0o755);
    expect(byName.get("suid")?.header.mode).toBe(0o755);
    // A hard link is stored as a second regular file, so no entry depends on another.
    expect(byName.get("hard.js")?.header.type).toBe("file");
    expect(byName.get("hard.js")?.body.toString()).toBe("a");
    // diff_id and digest describe the bytes actually written.
    const gz = await readFile(blob.path);
    expect(blob.digest).toBe(sha(gz));
    expect(blob.size).toBe(gz.length);
    expect(blob.diffId).toBe(sha(gunzipSync(gz)));
  });

  it("writes root links (the app layer's /app) first, as root-owned symlinks", async () => {
    const src = path.join(dir, "src");
    await mkdir(src);
    await writeFile(path.join(src, "Procfile"), "web: x\n");
    const blob = await writeLayer(src, "/workspace", path.join(dir, "app.tgz"), {
      rootLinks: [{ name: "app", target: "/workspace" }],
    });
    const list = await entries(blob.path);
    expect(list.map((e) => e.header.name)).toEqual(["app", "workspace/", "workspace/Procfile"]);
    expect(list[0]?.header).toMatchObject({ type: "symlink", linkname: "/workspace", uid: 0, gid: 0 });
  });

  it("gives identical bytes for the same tree after touching, chowning and re-timing files on disk", async () => {
    const src = path.join(dir, "src");
    await makeTree(src);
    const first = await writeLayer(src, "/workspace", path.join(dir, "a.tgz"));
    await utimes(path.join(src, "lib", "a.js"), new Date(), new Date(2001, 1, 1));
    await utimes(path.join(src, "lib"), new Date(), new Date());
    await lutimes(path.join(src, "bin", "a"), new Date(), new Date(1999, 1, 1));
    if (process.getuid?.() === 0) {
      await chown(path.join(src, "bin", "node"), 4321, 4321);
      await chown(path.join(src, "lib"), 1, 1);
    }
    const second = await writeLayer(src, "/workspace", path.join(dir, "b.tgz"));
    expect(second.digest).toBe(first.digest);
    expect(second.diffId).toBe(first.diffId);
    expect(Buffer.compare(await readFile(first.path), await readFile(second.path))).toBe(0);
  });

  it("defaults every mtime to the CNB constant and pins the gzip header", async () => {
    const src = path.join(dir, "src");
    await makeTree(src);
    const blob = await writeLayer(src, "/cnb", path.join(dir, "c.tgz"), { uid: 0, gid: 0 });
    const gz = await readFile(blob.path);
    expect([...gz.subarray(0, 3)]).toEqual([0x1f, 0x8b, 8]);
    expect(gz.readUInt32LE(4)).toBe(0); // MTIME
    expect(gz[9]).toBe(0xff); // OS
    const list = await entries(blob.path);
    expect(list[0]?.header).toMatchObject({ name: "cnb/", uid: 0, gid: 0 });
    expect(new Set(list.map((e) => e.header.mtime.getTime()))).toEqual(new Set([NORMALIZED_EPOCH * 1000]));
  });

  it.each([
    ["a relative link climbing out", "../../../etc/passwd"],
    ["an absolute link elsewhere", "/etc/shadow"],
  ])("stores %s as a link, never reading what it points to on this machine", async (_label, target) => {
    const src = path.join(dir, "src");
    await makeTree(src);
    await symlink(target, path.join(src, "lib", "evil"));
    const blob = await writeLayer(src, "/workspace", path.join(dir, "e.tgz"));
    const evil = (await entries(blob.path)).find((e) => e.header.name === "workspace/lib/evil");
    expect(evil?.header).toMatchObject({ type: "symlink", linkname: target, size: 0 });
  });

  it("keeps absolute links that stay inside the layer's own image path", async () => {
    const src = path.join(dir, "src");
    await makeTree(src);
    await symlink("/workspace/lib/a.js", path.join(src, "abs"));
    const blob = await writeLayer(src, "/workspace", path.join(dir, "ok.tgz"));
    const list = await entries(blob.path);
    expect(list.find((e) => e.header.name === "workspace/abs")?.header.linkname).toBe("/workspace/lib/a.js");
  });

  it("writes names longer than 100 bytes deterministically", async () => {
    const src = path.join(dir, "src");
    const deep = path.join(src, "a".repeat(60), "b".repeat(60), "c".repeat(60));
    await mkdir(deep, { recursive: true });
    await writeFile(path.join(deep, "d".repeat(120)), "x");
    const one = await writeLayer(src, "/workspace", path.join(dir, "1.tgz"));
    const two = await writeLayer(src, "/workspace", path.join(dir, "2.tgz"));
    expect(two.digest).toBe(one.digest);
    const names = (await entries(one.path)).map((e) => e.header.name);
    expect(names).toContain(
      `workspace/${"a".repeat(60)}/${"b".repeat(60)}/${"c".repeat(60)}/${"d".repeat(120)}`,
    );
  });
});

describe("writeRootfsLayer", () => {
  it("keeps owners from disk, has no entry for / and normalises times", async () => {
    const src = path.join(dir, "rootfs");
    await makeTree(src);
    await symlink("/usr/bin/env", path.join(src, "abs-link"));
    if (process.getuid?.() === 0) await chown(path.join(src, "lib", "a.js"), 0, 42);
    const blob = await writeRootfsLayer(src, path.join(dir, "r.tgz"));
    const list = await entries(blob.path);
    expect(list[0]?.header.name).toBe("abs-link");
    const a = list.find((e) => e.header.name === "lib/a.js")?.header;
    if (process.getuid?.() === 0) expect(a?.gid).toBe(42);
    expect(a?.mtime.getTime()).toBe(NORMALIZED_EPOCH * 1000);
  });
});
