import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PipelineError } from "../../services/platform/errors.js";
import { startBuilder, type Builder } from "../helpers/buildpack-build.js";

/**
 * A hostile tool owner runs code in the build sandbox (a project.toml inline buildpack here; an npm
 * install script would do as well) and writes symlinks into the layers directory that Slipway, as root
 * on the host, reads and writes after each buildpack. Followed on the host, they would leak any host
 * file (the admin token, Redis's data) into the build's error or the image's env, or overwrite one.
 * Each case must fail the build naming what was refused, and leave the host file unread and untouched.
 */
let b: Builder;
let hostDir: string;
let secretFile: string;
const SECRET = "HOST-SECRET-0f3a9c";

beforeAll(async () => {
  b = await startBuilder("symlink-attacks");
  // A host directory outside every mount of the sandbox, standing for /root or SLIPWAY_HOME.
  hostDir = await mkdtemp("/var/tmp/slipway-host-secrets-");
  secretFile = path.join(hostDir, "admin-token");
  // Not valid TOML: the old code quoted the first line of the file in its parse error.
  await writeFile(secretFile, `token = ${SECRET}\n`);
  await mkdir(path.join(hostDir, "envdir"));
  await writeFile(path.join(hostDir, "envdir", "LEAKED"), SECRET);
}, 600_000);

afterAll(async () => {
  await b?.close();
  if (hostDir) await rm(hostDir, { recursive: true, force: true });
});

/** An app whose only buildpacks are an inline script (the attack) and the Procfile buildpack after it. */
function attackApp(script: string): Record<string, string> {
  return {
    Procfile: "web: sleep 1000\n",
    "project.toml": `[_]
schema-version = "0.2"

[[io.buildpacks.group]]
id = "evil/inline"
  [io.buildpacks.group.script]
  api = "0.10"
  shell = "/bin/bash"
  inline = """
set -euo pipefail
${script}
"""

[[io.buildpacks.group]]
id = "slipway/procfile"
`,
  };
}

async function attack(name: string, script: string): Promise<{ error: PipelineError; text: string }> {
  const app = await b.fixture("", attackApp(script), name);
  const error = await b.buildError(name, app);
  const details = error.details as { log_tail?: string[] } | undefined;
  return { error, text: [error.message, ...(details?.log_tail ?? [])].join("\n") };
}

describe("symlinks a buildpack leaves in its layers are never followed on the host", () => {
  it("refuses a launch.toml that links to a host file, without quoting it", async () => {
    const { error, text } = await attack("launch", `ln -s ${secretFile} "$CNB_LAYERS_DIR/launch.toml"`);
    expect(error.code).toBe("build_failed");
    expect(error.message).toContain("buildpack evil/inline: evil_inline/launch.toml: not a regular file");
    expect(text).not.toContain(SECRET);
  });

  it("refuses a layer's metadata file that links to a host file", async () => {
    const { error, text } = await attack(
      "layer-toml",
      `mkdir "$CNB_LAYERS_DIR/deps"; ln -s ${secretFile} "$CNB_LAYERS_DIR/deps.toml"`,
    );
    expect(error.message).toContain("evil_inline/deps.toml: not a regular file");
    expect(text).not.toContain(SECRET);
  });

  it("refuses a layer env directory that links to a host directory, so no host file becomes an env var", async () => {
    const { error, text } = await attack(
      "env-dir",
      [
        `mkdir "$CNB_LAYERS_DIR/deps"`,
        `printf '[types]\\nbuild = true\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/deps.toml"`,
        `ln -s ${path.join(hostDir, "envdir")} "$CNB_LAYERS_DIR/deps/env"`,
      ].join("\n"),
    );
    expect(error.message).toContain("evil_inline/deps/env: not a regular file or directory");
    expect(text).not.toContain(SECRET);
  });

  it("refuses a buildpack directory swapped for a link to a host directory", async () => {
    const { error } = await attack(
      "bp-dir",
      `cd /; rm -rf "$CNB_LAYERS_DIR"; ln -s ${hostDir} "$CNB_LAYERS_DIR"`,
    );
    expect(error.message).toContain("buildpack evil/inline: evil_inline: not a regular file or directory");
  });

  it("never writes the next buildpack's plan through a link to a host file", async () => {
    const victim = path.join(hostDir, "victim");
    await writeFile(victim, "untouched\n");
    const { error } = await attack(
      "plan",
      // Slipway's own plan directory is root's, but /layers is the build user's: it can be moved away.
      [
        `cd /layers`,
        `mv .slipway .slipway-moved`,
        `mkdir -p .slipway/plan`,
        `ln -s ${victim} .slipway/plan/slipway_procfile.toml`,
      ].join("\n"),
    );
    expect(error.message).toContain(".slipway/plan/slipway_procfile.toml: not a regular file");
    expect(await readFile(victim, "utf8")).toBe("untouched\n");
  });
});
