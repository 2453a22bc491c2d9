import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Builder, startBuilder } from "./helpers/buildpack-build.js";

/**
 * Node.js apps as Toolforge tools write them (issue 12): a Vite 8 + Svelte 5 frontend whose build needs
 * devDependencies and whose Procfile says `web: npm start`, old engines.node ranges, and Paketo's
 * BP_NODE_VERSION / BP_NODE_RUN_SCRIPTS from project.toml. Real lifecycle, podman and npm registry.
 */
const LONG = 600_000;

let b: Builder;

beforeAll(async () => {
  b = await startBuilder("node-apps");
}, LONG);

afterAll(async () => {
  await b?.close();
});

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

function projectToml(env: Record<string, string>): string {
  return [
    "[_]",
    'schema-version = "0.2"',
    "",
    ...Object.entries(env).flatMap(([name, value]) => [
      "[[io.buildpacks.build.env]]",
      `name = "${name}"`,
      `value = "${value}"`,
      "",
    ]),
  ].join("\n");
}

describe("a Vite 8 + Svelte 5 app built with devDependencies and started with `web: npm start`", () => {
  it(
    "builds dist/ with Vite, ships only production dependencies plus npm, and serves the built page",
    async () => {
      const dir = await b.fixture("vite-svelte");
      const cold = await b.build("vite", dir);
      expect(cold.lines).toContain("Running npm run build");
      expect(cold.lines.some((l) => l.includes("ERR_MODULE_NOT_FOUND"))).toBe(false);
      expect(await exists(path.join(cold.result.appDir, "dist", "index.html"))).toBe(true);

      // The image: Node.js, npm (for `npm start`) and production node_modules; the full tree the build
      // used is neither a launch layer nor left in /workspace.
      expect(cold.result.layers.map((l) => l.name)).toEqual(["node", "node_modules", "npm"]);
      const modules = await readdir(cold.result.layers.find((l) => l.name === "node_modules")!.hostDir);
      expect(modules).toContain("sirv-cli");
      for (const dev of ["vite", "rolldown", "svelte", "@sveltejs"]) expect(modules).not.toContain(dev);
      expect(cold.result.processes).toEqual([
        expect.objectContaining({ type: "web", buildpackId: "slipway/procfile", default: true }),
      ]);

      // A code-only change: the full tree comes from the cache, no npm ci, and Vite builds again.
      const app = path.join(dir, "src", "App.svelte");
      await writeFile(app, (await readFile(app, "utf8")).replace("on Toolforge", "on Slipway"));
      const warm = await b.build("vite", dir);
      expect(warm.lines.some((l) => l.startsWith("Reusing node_modules with devDependencies"))).toBe(true);
      expect(warm.lines.some((l) => l.startsWith("Installing dependencies"))).toBe(false);
      expect(warm.lines).toContain("Running npm run build");

      await b.serve("vite", warm.result, async (get) => {
        const page = await (await get("/")).text();
        expect(page).toContain('<div id="app"></div>');
        const script = /src="(\/assets\/index-[\w-]+\.js)"/.exec(page);
        expect(script, page).not.toBeNull();
        const js = await get(script![1]!);
        expect(js.status).toBe(200);
        expect(await js.text()).toContain("Hello from Svelte on Slipway");
      });
    },
    LONG,
  );
});

describe("Node.js version: engines.node and BP_NODE_VERSION", () => {
  it(
    "refuses engines.node ranges with no supported Node.js, the first line saying what to change",
    async () => {
      for (const range of ["4.0.0", "4.2.x"]) {
        const pkg = { name: "old", version: "1.0.0", engines: { node: range } };
        const dir = await b.fixture("", { "package.json": JSON.stringify(pkg) }, "old-engines");
        const error = await b.buildError("old-engines", dir);
        expect(error.details).toMatchObject({ phase: "build", buildpack: "slipway/nodejs" });
        expect(error.message.split("\n").at(-1)).toBe(
          `build failed in phase build: buildpack slipway/nodejs exited with code 1: error: package.json ` +
            `engines.node "${range}" allows only Node.js versions this buildpack does not support; change it ` +
            `to a range that includes a supported version (^18.17.0 || >=20.5.0), e.g. "22"`,
        );
      }

      const pkg = { name: "old", version: "1.0.0", engines: { node: "22" } };
      const dir = await b.fixture(
        "",
        { "package.json": JSON.stringify(pkg), "project.toml": projectToml({ BP_NODE_VERSION: "16" }) },
        "old-setting",
      );
      const error = await b.buildError("old-setting", dir);
      expect(error.message).toContain(
        'exited with code 1: error: BP_NODE_VERSION "16" allows only Node.js versions this buildpack does not support',
      );
    },
    LONG,
  );

  it(
    "BP_NODE_VERSION overrides engines.node and BP_NODE_RUN_SCRIPTS chooses the scripts the build runs",
    async () => {
      const pkg = {
        name: "settings",
        version: "1.0.0",
        engines: { node: "4.0.0" },
        scripts: {
          build: "node -e \"require('fs').writeFileSync('built.txt', 'build')\"",
          stamp: "node -e \"require('fs').writeFileSync('stamp.txt', 'stamp on ' + process.version)\"",
          start: "node server.js",
        },
      };
      const server =
        'const fs = require("fs");\n' +
        "const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : 'no ' + f);\n" +
        'require("http").createServer((req, res) => res.end(read("stamp.txt") + "; " + read("built.txt")))' +
        ".listen(Number(process.env.PORT));\n";
      const dir = await b.fixture(
        "",
        {
          "package.json": JSON.stringify(pkg),
          "server.js": server,
          "project.toml": projectToml({ BP_NODE_VERSION: "22", BP_NODE_RUN_SCRIPTS: "stamp" }),
        },
        "settings",
      );
      const { result, lines } = await b.build("settings", dir);
      expect(lines).toContain('Resolving Node.js version (BP_NODE_VERSION "22")');
      expect(lines).toContain("Running npm run stamp");
      expect(lines).not.toContain("Running npm run build");
      await b.serve("settings", result, async (get) => {
        expect(await (await get("/")).text()).toMatch(/^stamp on v22\.\d+\.\d+; no built\.txt$/);
      });

      await writeFile(path.join(dir, "project.toml"), projectToml({ BP_NODE_RUN_SCRIPTS: "build,nope" }));
      const error = await b.buildError("settings", dir);
      expect(error.message).toContain(
        'exited with code 1: error: BP_NODE_RUN_SCRIPTS names script "nope", which package.json does not have; ' +
          'remove it or add it to "scripts"',
      );
    },
    LONG,
  );
});
