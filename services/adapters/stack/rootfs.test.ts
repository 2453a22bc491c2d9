import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../../platform/process.js";
import { clearRootfs } from "./rootfs.js";

const isRoot = process.getuid?.() === 0;

// A builder killed while debootstrap ran leaves proc mounted in the half-built tree; the next start
// must clear it rather than fail on `EBUSY … rmdir …/rootfs/proc` until someone unmounts it by hand.
describe.skipIf(!isRoot)("a half-built stack tree", () => {
  const dirs: string[] = [];

  afterAll(async () => {
    for (const dir of dirs) {
      await run("umount", ["--lazy", path.join(dir, "rootfs with space/proc")], { allowFailure: true });
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("is removed with the proc debootstrap left mounted in it", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-rootfs-"));
    dirs.push(dir);
    const rootfs = path.join(dir, "rootfs with space");
    await mkdir(path.join(rootfs, "proc"), { recursive: true });
    await writeFile(path.join(rootfs, "half-installed"), "");
    await run("mount", ["-t", "proc", "proc", path.join(rootfs, "proc")]);

    const unmounted = await clearRootfs(rootfs);

    expect(unmounted).toEqual([path.join(await realpath(dir), "rootfs with space/proc")]);
    expect(existsSync(rootfs)).toBe(false);
    expect(await readFile("/proc/self/mountinfo", "utf8")).not.toContain("rootfs\\040with\\040space");
  });
});
