import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../services/platform/env.js";
import { memoryLogger } from "../services/platform/logger.js";
import { startServer } from "../services/roles/server/server.js";

/**
 * Issue 13, item 8: a buildpack folder missing from the detect order used to be ignored without a word.
 * Now the server reads buildpacks/order.toml first and refuses to start while the two disagree.
 */
const repoRoot = path.resolve(import.meta.dirname, "..");
let scratch: string | undefined;
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe("starting with a buildpack folder the order does not name", () => {
  it("fails at once, naming the folder and what to add", async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), "slipway-bporder-"));
    const root = path.join(scratch, "repo");
    await cp(path.join(repoRoot, "buildpacks"), path.join(root, "buildpacks"), { recursive: true });
    await mkdir(path.join(root, "buildpacks", "ruby", "bin"), { recursive: true });
    await writeFile(
      path.join(root, "buildpacks", "ruby", "buildpack.toml"),
      'api = "0.10"\n\n[buildpack]\nid = "slipway/ruby"\nversion = "0.1.0"\n',
    );
    const config = loadConfig({ SLIPWAY_HOME: path.join(scratch, "home") }, root);
    await expect(startServer(config, memoryLogger(), "all")).rejects.toThrow(
      'add slipway/ruby to buildpacks/order.toml ([[order.group]] id = "slipway/ruby"), or remove the folder buildpacks/ruby',
    );
  });
});
