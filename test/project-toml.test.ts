import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Builder, startBuilder } from "./helpers/buildpack-build.js";

// Real podman builds with the cached stack of an app whose project.toml (CNB project descriptor 0.2)
// sets build env, excludes files, and replaces detection with an explicit group that has an inline
// buildpack. Without project.toml the static buildpack would detect index.html.
const LONG = 600_000;
let b: Builder;

beforeAll(async () => {
  b = await startBuilder("project-toml");
}, 600_000);

afterAll(async () => {
  await b?.close();
});

describe("project.toml", () => {
  it(
    "applies build env (not in the image), exclude, an explicit group and an inline buildpack",
    async () => {
      const app = await b.fixture("project-toml", {
        "debug.log": "excluded\n",
        "src/keep.log": "excluded too\n",
      });
      const { result, lines } = await b.build("project-toml", app);
      expect(result.group.map((g) => g.id)).toEqual(["me/show-env", "slipway/procfile"]);
      expect(lines).toContain("project.toml: buildpack group me/show-env, slipway/procfile");
      expect(lines).toContain("inline buildpack: GREETING=hello from project.toml");
      expect(lines).toContain("inline buildpack: spec/ present? no");
      expect(lines).toContain("project.toml: exclude removed 3 path(s) from the app");

      await b.serve("project-toml", result, async (get) => {
        const files = (await (await get("/files")).json()) as string[];
        expect(files).toEqual(["Procfile", "index.html", "probe.py", "project.toml"]);
        const env = await get("/env/GREETING");
        expect(env.status).toBe(404); // build env stays out of the launch environment
      });
    },
    LONG,
  );

  it(
    "builds as before when there is no project.toml",
    async () => {
      const app = await b.fixture("project-toml", {}, "no-project");
      const { rm } = await import("node:fs/promises");
      await rm(`${app}/project.toml`);
      const { result, lines } = await b.build("no-project", app);
      expect(result.group.map((g) => g.id)).toEqual(["slipway/static", "slipway/procfile"]);
      expect(lines.join("\n")).not.toContain("project.toml");
    },
    LONG,
  );

  it("fails with the available ids when the group names an unknown buildpack", async () => {
    const app = await b.fixture(
      "project-toml",
      { "project.toml": '[_]\nschema-version = "0.2"\n\n[[io.buildpacks.group]]\nid = "heroku/ruby"\n' },
      "unknown-group",
    );
    const error = await b.buildError("unknown-group", app);
    expect(error.code).toBe("detect_failed");
    expect(error.message).toBe(
      "project.toml: [[io.buildpacks.group]] id heroku/ruby is not a buildpack this platform has; available: " +
        "slipway/apt, slipway/go, slipway/nodejs, slipway/php, slipway/procfile, slipway/python, slipway/static",
    );
  });

  it("fails with the file and field of an invalid project.toml, leaving the app untouched", async () => {
    const app = await b.fixture(
      "project-toml",
      {
        "project.toml":
          '[_]\nschema-version = "0.2"\n\n[io.buildpacks]\ninclude = ["src/"]\nexclude = ["spec/"]\n',
      },
      "invalid",
    );
    const error = await b.buildError("invalid", app);
    expect(error.code).toBe("detect_failed");
    expect(error.message).toContain("project.toml: [io.buildpacks] may have include or exclude, not both");
    const { stat } = await import("node:fs/promises");
    expect((await stat(`${app}/spec/probe_test.py`)).isFile()).toBe(true);

    const broken = await b.fixture("project-toml", { "project.toml": "[io.buildpacks\n" }, "broken");
    const error2 = await b.buildError("broken", broken);
    expect(error2.message).toMatch(/^project\.toml: not valid TOML/);

    // Read on the host: a symlink to a host file is refused, not followed.
    const linked = await b.fixture("project-toml", {}, "symlink");
    const { symlink, unlink } = await import("node:fs/promises");
    await unlink(`${linked}/project.toml`);
    await symlink("/etc/passwd", `${linked}/project.toml`);
    const error3 = await b.buildError("symlink", linked);
    expect(error3.message).toBe("project.toml: must be a regular file in the repository (not a symlink)");
  });
});
