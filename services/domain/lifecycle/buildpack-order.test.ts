import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadBuildpackOrder } from "./buildpack-order.js";

const REPO_BUILDPACKS = path.resolve(import.meta.dirname, "../../../buildpacks");

let dir: string;
beforeEach(async () => {
  dir = path.join(await mkdtemp(path.join(os.tmpdir(), "slipway-order-")), "buildpacks");
  await cp(REPO_BUILDPACKS, dir, { recursive: true });
});
afterEach(async () => {
  await rm(path.dirname(dir), { recursive: true, force: true });
});

async function addBuildpack(folder: string, id: string) {
  await mkdir(path.join(dir, folder, "bin"), { recursive: true });
  await writeFile(
    path.join(dir, folder, "buildpack.toml"),
    `api = "0.10"\n\n[buildpack]\nid = "${id}"\nversion = "0.1.0"\n\n[[targets]]\nos = "linux"\n`,
  );
}

describe("buildpacks/order.toml", () => {
  it("gives Slipway's buildpacks in the detect order they always had, all optional", async () => {
    const { buildpacks, order } = await loadBuildpackOrder(REPO_BUILDPACKS);
    expect(buildpacks.map((b) => path.basename(b))).toEqual([
      "apt",
      "nodejs",
      "python",
      "php",
      "go",
      "static",
      "procfile",
    ]);
    expect(order).toHaveLength(1);
    expect(order[0]!.group.every((e) => e.optional)).toBe(true);
  });

  it("refuses a buildpack folder the order does not name, naming the folder", async () => {
    await addBuildpack("ruby", "slipway/ruby");
    await expect(loadBuildpackOrder(dir)).rejects.toThrow(
      /^add slipway\/ruby to buildpacks\/order.toml .*remove the folder buildpacks\/ruby/,
    );
  });

  it("refuses an order entry no folder provides, naming it", async () => {
    await rm(path.join(dir, "go"), { recursive: true });
    await expect(loadBuildpackOrder(dir)).rejects.toThrow(
      /^remove slipway\/go from buildpacks\/order.toml, or add its folder/,
    );
  });

  it("refuses a folder with bin/ but no buildpack.toml", async () => {
    await rm(path.join(dir, "php", "buildpack.toml"));
    await expect(loadBuildpackOrder(dir)).rejects.toThrow(/^add buildpacks\/php\/buildpack.toml/);
  });

  it("refuses a version that differs from the folder's", async () => {
    await addBuildpack("ruby", "slipway/ruby");
    await writeFile(
      path.join(dir, "order.toml"),
      `[[order]]\n[[order.group]]\nid = "slipway/ruby"\nversion = "9.9.9"\n`,
    );
    await expect(loadBuildpackOrder(dir)).rejects.toThrow(/^make the version of slipway\/ruby/);
  });

  it("refuses a missing order.toml, saying to create it", async () => {
    await rm(path.join(dir, "order.toml"));
    await expect(loadBuildpackOrder(dir)).rejects.toThrow(/^create buildpacks\/order.toml/);
  });

  it("takes a buildpack once it is in the order, with optional defaulting to false as in CNB", async () => {
    await addBuildpack("ruby", "slipway/ruby");
    const text = `[[order]]\n[[order.group]]\nid = "slipway/ruby"\n\n[[order]]\n${["apt", "nodejs", "python", "php", "go", "static", "procfile"].map((n) => `[[order.group]]\nid = "slipway/${n}"\noptional = true\n`).join("")}`;
    await writeFile(path.join(dir, "order.toml"), text);
    const { buildpacks, order } = await loadBuildpackOrder(dir);
    expect(path.basename(buildpacks[0]!)).toBe("ruby");
    expect(order[0]!.group).toEqual([{ id: "slipway/ruby", optional: false }]);
    expect(order).toHaveLength(2);
  });
});
