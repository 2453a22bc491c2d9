import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeLayer } from "../services/adapters/oci/layer.js";
import type { LifecycleResult } from "../services/domain/lifecycle/types.js";
import { run } from "../services/platform/process.js";
import { type Builder, startBuilder } from "./helpers/buildpack-build.js";

// Cold builds download Node.js and npm packages; each test runs two builds.
const LONG = 600_000;
let b: Builder;

beforeAll(async () => {
  b = await startBuilder("bpmixed");
}, 600_000);

afterAll(async () => {
  await b?.close();
});

/** The diff ids of the launch layers as the exporter would write them: equal trees give equal ids. */
async function layerIds(label: string, result: LifecycleResult): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const l of result.layers) {
    const blob = await writeLayer(l.hostDir, l.imagePath, path.join(b.root, `${label}-${l.name}.tar.gz`));
    out[l.name] = blob.diffId;
  }
  return out;
}

const lockOf = async (pkg: object): Promise<string> => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-lock-"));
  await writeFile(path.join(dir, "package.json"), JSON.stringify(pkg, null, 2));
  await run("npm", ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: dir,
  });
  return readFile(path.join(dir, "package-lock.json"), "utf8");
};

describe("mixed Node.js + Python app", () => {
  it(
    "runs the Node build script, serves its asset from the Python server, and ships no devDependencies",
    async () => {
      const dir = await b.fixture("mixed");
      const cold = await b.build("mixed", dir);
      expect(cold.result.group.map((g) => g.id)).toEqual([
        "slipway/nodejs",
        "slipway/python",
        "slipway/procfile",
      ]);
      expect(cold.lines).toContain("Running npm run build");
      expect(cold.lines.some((l) => l.startsWith("Pruning devDependencies"))).toBe(true);
      // Node.js, npm and the production node_modules from nodejs; the venv from python. The full
      // node_modules the build used is a cache layer, not in the image.
      expect(cold.result.layers.map((l) => `${l.buildpackId}:${l.name}`)).toEqual([
        "slipway/nodejs:node",
        "slipway/nodejs:node_modules",
        "slipway/nodejs:npm",
        "slipway/python:venv",
      ]);
      const modules = cold.result.layers.find((l) => l.name === "node_modules")!;
      expect(await readdir(modules.hostDir)).not.toContain("is-number");
      expect(cold.result.processes).toEqual([
        expect.objectContaining({ type: "web", buildpackId: "slipway/procfile", default: true }),
      ]);
      const coldIds = await layerIds("mixed-cold", cold.result);

      // Same commit again: neither install runs, and the image layers are byte for byte the same.
      const warm = await b.build("mixed", dir);
      expect(warm.lines.some((l) => l.startsWith("Installing dependencies"))).toBe(false);
      expect(warm.lines.some((l) => l.startsWith("Reusing node_modules with devDependencies"))).toBe(true);
      expect(warm.lines.some((l) => l.startsWith("Reusing production node_modules"))).toBe(true);
      expect(await layerIds("mixed-warm", warm.result)).toEqual(coldIds);

      await b.serve("mixed", warm.result, async (get) => {
        const page = await get("/");
        expect(page.status).toBe(200);
        expect(await page.text()).toContain('<script src="/app.js"></script>');
        const asset = await get("/app.js");
        expect(asset.status).toBe(200);
        expect(await asset.text()).toContain('textContent = "built by Node.js 22"');
        const api = (await (await get("/api")).json()) as { python: string; node_modules: string[] };
        expect(api.python).toMatch(/^3\.\d+\.\d+$/);
        // What the running app sees in /workspace/node_modules: no devDependency.
        expect(api.node_modules).not.toContain("is-number");
      });
    },
    LONG,
  );
});

describe("nodejs build script with devDependencies", () => {
  it(
    "builds with a devDependency, then runs without it",
    async () => {
      const pkg = {
        name: "devbuild",
        version: "1.0.0",
        private: true,
        scripts: { build: "node build.js", start: "node server.js" },
        engines: { node: "22" },
        dependencies: { ms: "2.1.3" },
        devDependencies: { "is-number": "7.0.0" },
      };
      const dir = await b.fixture(
        "",
        {
          "package.json": JSON.stringify(pkg, null, 2),
          "package-lock.json": await lockOf(pkg),
          "build.js":
            'const isNumber = require("is-number");\n' +
            'require("fs").writeFileSync("built.txt", `is-number(42) at build time: ${isNumber(42)}`);\n',
          "server.js":
            'const fs = require("fs");\nconst ms = require("ms");\n' +
            "let dev = 'absent';\ntry { require.resolve('is-number'); dev = 'present'; } catch {}\n" +
            'require("http").createServer((req, res) => res.end(`${fs.readFileSync("built.txt", "utf8")}; ' +
            'ms: ${ms("1m")}; is-number at run time: ${dev}`)).listen(process.env.PORT);\n',
        },
        "devbuild",
      );
      const cold = await b.build("devbuild", dir);
      expect(cold.lines.some((l) => l.startsWith("Installing dependencies with npm ci"))).toBe(true);
      expect(cold.result.processes).toEqual([
        expect.objectContaining({ type: "web", command: ["bash", "-c"], args: ["node server.js"] }),
      ]);
      expect(cold.result.layers.map((l) => l.name)).toEqual(["node", "node_modules", "npm"]);
      const coldIds = await layerIds("devbuild-cold", cold.result);

      // A code-only change: no npm ci, the build script runs again with the cached devDependencies.
      await writeFile(path.join(dir, "README.md"), "changed\n");
      const warm = await b.build("devbuild", dir);
      expect(warm.lines.some((l) => l.startsWith("Installing dependencies"))).toBe(false);
      expect(warm.lines).toContain("Running npm run build");
      const warmIds = await layerIds("devbuild-warm", warm.result);
      expect(warmIds.node_modules).toBe(coldIds.node_modules);
      expect(warmIds.node).toBe(coldIds.node);

      await b.serve("devbuild", warm.result, async (get) => {
        expect(await (await get("/")).text()).toBe(
          "is-number(42) at build time: true; ms: 60000; is-number at run time: absent",
        );
      });
    },
    LONG,
  );
});

describe("no-cache build (`slipway build start --no-cache`, API no_cache: true)", () => {
  it(
    "restores no cached layer, so every install runs again, and still saves the cache for the next build",
    async () => {
      const dir = await b.fixture("mixed", {}, "nocache");
      await b.build("nocache", dir);
      const fresh = await b.build("nocache", dir, { noCache: true });
      expect(fresh.lines).toContain("Skipping the cache (no-cache build)");
      expect(fresh.lines.some((l) => l.startsWith("Restoring cached layer"))).toBe(false);
      expect(fresh.lines.some((l) => l.startsWith("Installing Node.js 22."))).toBe(true);
      expect(fresh.lines.some((l) => l.startsWith("Installing dependencies with npm ci"))).toBe(true);
      expect(fresh.lines.some((l) => l.startsWith("Pruning devDependencies"))).toBe(true);
      expect(fresh.lines.some((l) => l.startsWith("Reusing"))).toBe(false);

      const next = await b.build("nocache", dir);
      expect(
        next.lines.some((l) => l.startsWith("Restoring cached layer slipway/nodejs:build_modules")),
      ).toBe(true);
      expect(next.lines.some((l) => l.startsWith("Installing dependencies"))).toBe(false);
    },
    LONG,
  );
});
