import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Builder, config, startBuilder } from "./helpers/buildpack-build.js";

// A real podman build with the cached stack: the apt buildpack downloads jq, libjq1 and libonig5 (none
// of them in the run image) from the Debian mirror; the app runs jq, so both PATH and LD_LIBRARY_PATH
// of the launch layer are needed.
const LONG = 600_000;
let b: Builder;
const figures: string[] = [];

beforeAll(async () => {
  b = await startBuilder("apt");
}, 600_000);

afterAll(async () => {
  if (figures.length > 0) console.log(["apt build figures:", ...figures].join("\n  "));
  await b?.close();
});

describe("apt buildpack", () => {
  it(
    "installs an Aptfile package with its libraries, runs it at build and at run time, and reuses the layer",
    async () => {
      // A later (inline) buildpack runs jq at build time: the layer's env applies to the build too.
      const app = await b.fixture("apt-jq", {
        "project.toml": `[_]
schema-version = "0.2"

[[io.buildpacks.post.group]]
id = "test/uses-jq"
  [io.buildpacks.post.group.script]
  api = "0.10"
  shell = "/bin/bash"
  inline = 'echo "build-time jq: $(jq -c -n "[1,2] | add") at $(command -v jq)"'
`,
      });
      let t = Date.now();
      const first = await b.build("apt-jq", app);
      figures.push(`cold build ${((Date.now() - t) / 1000).toFixed(1)} s`);
      expect(first.result.group.map((g) => g.id)).toEqual([
        "slipway/apt",
        "slipway/procfile",
        "test/uses-jq",
      ]);
      expect(first.lines.join("\n")).toMatch(/Downloading \d+ Debian packages .*jq/);
      expect(first.lines.join("\n")).toMatch(/Installed: .*jq .*libjq1 .*libonig5/);
      expect(first.lines).toContain("build-time jq: 3 at /layers/slipway_apt/packages/usr/bin/jq");
      const layer = first.result.layers.find((l) => l.buildpackId === "slipway/apt");
      expect(layer?.imagePath).toBe("/layers/slipway_apt/packages");

      await b.serve("apt-jq", first.result, async (get) => {
        const jq = await get("/jq");
        expect(await jq.text()).toBe('{"sum":6}\n');
        expect(jq.status).toBe(200);
        expect(await (await get("/which/jq")).text()).toBe("/layers/slipway_apt/packages/usr/bin/jq");
        expect(await (await get("/env/LD_LIBRARY_PATH")).text()).toContain(
          "/layers/slipway_apt/packages/usr/lib/x86_64-linux-gnu",
        );
      });

      // Same Aptfile, same mirror: the cached layer is used as is, nothing is fetched.
      t = Date.now();
      const second = await b.build("apt-jq", await b.fixture("apt-jq"));
      figures.push(`warm build ${((Date.now() - t) / 1000).toFixed(1)} s`);
      const log = second.lines.join("\n");
      expect(log).toContain("Reusing the Debian packages layer (package list and mirror unchanged): jq");
      expect(log).not.toContain("Downloading");
      expect(log).not.toContain("Fetching the Debian package index");
      await b.serve("apt-jq-2", second.result, async (get) => {
        expect(await (await get("/jq")).text()).toBe('{"sum":6}\n');
      });
    },
    LONG,
  );

  it(
    "reads project.toml's [com.heroku.buildpacks.deb-packages] install list (strings and tables)",
    async () => {
      const app = await b.fixture(
        "apt-jq",
        {
          "project.toml": `[_]
schema-version = "0.2"

[com.heroku.buildpacks.deb-packages]
install = [
  { name = "jq" },
]
`,
        },
        "apt-project",
      );
      await rm(path.join(app, "Aptfile"));
      const { result, lines } = await b.build("apt-project", app);
      expect(result.group.map((g) => g.id)).toEqual(["slipway/apt", "slipway/procfile"]);
      expect(lines.join("\n")).toMatch(/Installing Debian packages from .*: jq/);
      await b.serve("apt-project", result, async (get) => {
        expect(await (await get("/jq")).text()).toBe('{"sum":6}\n');
      });
    },
    LONG,
  );

  it(
    "fails on an unknown package, naming it and the Aptfile line",
    async () => {
      const app = await b.fixture(
        "apt-jq",
        { Aptfile: "jq\n\n# typo below\nno-such-package-slipway\n" },
        "apt-bad",
      );
      const error = await b.buildError("apt-bad", app);
      expect(error.code).toBe("build_failed");
      expect(error.details).toMatchObject({ phase: "build", buildpack: "slipway/apt" });
      expect((error.details?.log_tail as string[]).join("\n")).toContain(
        "error: Aptfile line 4: Debian package 'no-such-package-slipway' does not exist in Debian bookworm",
      );
    },
    LONG,
  );

  it(
    "rejects a name that is not Debian package syntax before anything is downloaded",
    async () => {
      const app = await b.fixture(
        "apt-jq",
        {
          Aptfile: "jq\n",
          "project.toml": '[com.heroku.buildpacks.deb-packages]\ninstall = ["jq", "jq; touch /tmp/pwned"]\n',
        },
        "apt-inject",
      );
      const error = await b.buildError("apt-inject", app);
      const tail = (error.details?.log_tail as string[]).join("\n");
      expect(tail).toContain(
        "error: project.toml line 2 ([com.heroku.buildpacks.deb-packages] install[1]): 'jq; touch /tmp/pwned' is not a Debian package name",
      );
      expect(tail).not.toContain("Fetching the Debian package index");
    },
    LONG,
  );
});

// The Aptfile / project.toml reader on its own (python3 on the host, no build).
describe("apt.py list", () => {
  const run = promisify(execFile);
  const script = path.join(config.repoRoot, "buildpacks", "apt", "lib", "apt.py");
  async function list(files: Record<string, string>): Promise<{ out: string; err: string; code: number }> {
    const dir = await mkdtemp(path.join(tmpdir(), "slipway-aptfile-"));
    try {
      for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
      const r = await run("python3", [script, "list"], { cwd: dir });
      return { out: r.stdout, err: r.stderr, code: 0 };
    } catch (error) {
      const e = error as { stdout: string; stderr: string; code: number };
      return { out: e.stdout, err: e.stderr, code: e.code };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it("skips comments and blank lines, keeps the first mention of a name, and says where each came from", async () => {
    const r = await list({
      Aptfile: "# tools\njq\n\n  libpq5   # for psycopg\njq\n",
      "project.toml":
        '[com.heroku.buildpacks.deb-packages]\ninstall = [\n  "ffmpeg",\n  { name = "jq" },\n]\n',
    });
    expect(r.out).toBe(
      "jq\tAptfile line 2\nlibpq5\tAptfile line 4\nffmpeg\tproject.toml line 3 ([com.heroku.buildpacks.deb-packages] install[0])\n",
    );
  });

  it("rejects what is not one Debian package name per line", async () => {
    expect((await list({ Aptfile: "jq curl\n" })).err).toContain(
      "Aptfile line 1: one Debian package name per line",
    );
    expect((await list({ Aptfile: "Jq\n" })).err).toContain(
      "Aptfile line 1: 'Jq' is not a Debian package name",
    );
    expect((await list({ Aptfile: ":repo:deb http://x bookworm main\n" })).err).toContain(
      "Aptfile line 1: custom repositories (:repo:) are not supported",
    );
    expect((await list({ Aptfile: "jq\nhttps://example.org/x.deb\n" })).err).toContain(
      "Aptfile line 2: .deb files and URLs are not supported",
    );
    const bad = await list({
      "project.toml": "[com.heroku.buildpacks.deb-packages]\ninstall = [{ version = 1 }]\n",
    });
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('install[0] must be a package name or a table with name = "<package>"');
  });
});
