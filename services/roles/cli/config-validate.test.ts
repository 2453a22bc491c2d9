import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { validateConfigFile } from "./config-validate.js";

const TOOLFORGE = `config_version: v1beta1
components:
  reviewer:
    build:
      repository: https://github.com/example/reviewer.git
      ref: refs/tags/v0.18.16
    run:
      command: web
      port: 8000
      replicas: 2
      publish: /
  export-statistics:
    build:
      reuse_from: reviewer
    run:
      command: ./manage.py export_statistics
      schedule: 13 9 * * *
`;

describe("validateConfigFile", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "slipway-config-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads toolforge.yaml when there is no slipway.yaml and names the components and their types", async () => {
    await writeFile(path.join(dir, "toolforge.yaml"), TOOLFORGE);
    const result = await validateConfigFile(undefined, { cwd: dir });
    expect(result.ok).toBe(true);
    expect(result.file).toBe("toolforge.yaml");
    const lines = result.output.split("\n");
    expect(lines[0]).toBe("toolforge.yaml is valid: 2 components");
    expect(lines[1]).toMatch(
      /^ {2}reviewer +continuous +published at \/, port 8000, 2 replicas, built from https:\/\/github\.com\/example\/reviewer\.git at refs\/tags\/v0\.18\.16$/,
    );
    expect(lines[2]).toMatch(/^ {2}export-statistics +scheduled +schedule 13 9 \* \* \*, image of reviewer$/);
    expect(lines[3]).toBe("deploys the default branch; tags do not deploy");
    expect(result.config?.components["export-statistics"]?.component_type).toBe("scheduled");
  });

  it("prefers slipway.yaml over toolforge.yaml", async () => {
    await writeFile(path.join(dir, "toolforge.yaml"), TOOLFORGE);
    await writeFile(
      path.join(dir, "slipway.yaml"),
      "components:\n  web:\n    run: {command: web}\ndeploy:\n  tags: ['v*']\n",
    );
    const result = await validateConfigFile(undefined, { cwd: dir });
    expect(result.ok).toBe(true);
    expect(result.output).toMatch(
      /^slipway\.yaml is valid: 1 component\n {2}web {2}continuous {2}built from this repository\n/,
    );
    expect(result.output).toContain("deploys the default branch and tags v*");
  });

  it("reports every problem with file, line and field", async () => {
    await mkdir(path.join(dir, "deploy"));
    await writeFile(
      path.join(dir, "deploy", "tool.yaml"),
      "components:\n  web:\n    run:\n      command: web\n      port: eighty\n      prot: 1\n",
    );
    const result = await validateConfigFile("deploy/tool.yaml", { cwd: dir });
    expect(result.ok).toBe(false);
    expect(result.output).toBe(
      [
        "deploy/tool.yaml has 2 problems:",
        'deploy/tool.yaml:5:7: components.web.run.port: expected a number from 1 to 65535, got "eighty"',
        'deploy/tool.yaml:6:7: components.web.run.prot: unknown key "prot"; did you mean "port"?',
      ].join("\n"),
    );
    expect(result.problems?.map((p) => p.line)).toEqual([5, 6]);
  });

  it("says what happens without a config file", async () => {
    const result = await validateConfigFile(undefined, { cwd: dir });
    expect(result.ok).toBe(false);
    expect(result.output).toContain("no slipway.yaml or toolforge.yaml in");
    expect(result.output).toContain("Procfile");
  });

  it("names a file given explicitly that cannot be read", async () => {
    const result = await validateConfigFile("missing.yaml", { cwd: dir });
    expect(result).toMatchObject({ ok: false, file: "missing.yaml" });
    expect(result.output).toMatch(/^cannot read missing\.yaml: .*ENOENT/);
  });
});
