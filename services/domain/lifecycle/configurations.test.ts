import { describe, expect, it } from "vitest";
import { parseBuildpackToml } from "./buildpack.js";
import { unusedBuildVariableWarnings } from "./configurations.js";

const toml = (configurations: string) => `api = "0.10"
[buildpack]
id = "test/bp"
version = "1.0.0"
${configurations}`;

describe("[[metadata.configurations]] and BP_* warnings", () => {
  it("reads the declared build variables of a buildpack.toml", () => {
    const bp = parseBuildpackToml(
      toml(`[[metadata.configurations]]
name = "BP_GO_TARGETS"
default = ""
description = "packages to build"
build = true
`),
      "buildpack.toml",
    );
    expect(bp.configurations).toEqual([
      { name: "BP_GO_TARGETS", default: "", description: "packages to build", build: true },
    ]);
  });

  it("refuses a configuration without a variable name, naming the file and entry", () => {
    expect(() =>
      parseBuildpackToml(toml(`[[metadata.configurations]]\ndefault = "x"\n`), "go/buildpack.toml"),
    ).toThrow("go/buildpack.toml: [[metadata.configurations]] entry 1 needs a name");
  });

  it("warns about each BP_* variable no buildpack of the group declares, and lists the known ones", () => {
    const group = [
      {
        configurations: [{ name: "BP_WEB_SERVER", default: undefined, description: undefined, build: true }],
      },
      {
        configurations: [{ name: "BP_GO_TARGETS", default: undefined, description: undefined, build: true }],
      },
    ];
    expect(
      unusedBuildVariableWarnings({ BP_WEB_SERVER: "nginx", BP_FOO: "1", OTHER: "x", BP_BAR: "" }, group),
    ).toEqual([
      "warning: BP_BAR is not used by any buildpack here; known: BP_GO_TARGETS, BP_WEB_SERVER",
      "warning: BP_FOO is not used by any buildpack here; known: BP_GO_TARGETS, BP_WEB_SERVER",
    ]);
    expect(unusedBuildVariableWarnings({ BP_FOO: "1" }, [])).toEqual([
      "warning: BP_FOO is not used by any buildpack here; known: none",
    ]);
  });
});
