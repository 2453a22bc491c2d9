import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { escapeId, parseBuildpackToml } from "./buildpack.js";
import { layerNames, parseLayerToml, restoredLayerToml } from "./layers.js";

describe("layer metadata", () => {
  it("reads types (unset = false) and metadata", () => {
    const l = parseLayerToml('[types]\nlaunch = true\ncache = true\n[metadata]\nversion = "22.1.0"\n', "x");
    expect(l).toEqual({
      types: { launch: true, build: false, cache: true },
      metadata: { version: "22.1.0" },
    });
  });

  it("strips [types] from restored metadata", () => {
    const l = parseLayerToml('[types]\nlaunch = true\ncache = true\n[metadata]\nkey = "abc"\n', "x");
    const restored = restoredLayerToml(l);
    expect(parse(restored)).toEqual({ metadata: { key: "abc" } });
    expect(restored).not.toContain("types");
  });

  it("finds layers by their .toml, skipping reserved names", () => {
    expect(
      layerNames(["node.toml", "node", "launch.toml", "store.toml", "build.toml", "a.toml", "b"]),
    ).toEqual(["a", "node"]);
  });
});

describe("buildpack.toml", () => {
  it("reads id, version and api, and escapes ids for directory names", () => {
    const bp = parseBuildpackToml(
      'api = "0.10"\n[buildpack]\nid = "slipway/nodejs"\nversion = "0.1.0"\n',
      "bp",
    );
    expect(bp).toMatchObject({ api: "0.10", id: "slipway/nodejs", version: "0.1.0", clearEnv: false });
    expect(escapeId(bp.id)).toBe("slipway_nodejs");
  });

  it("rejects unsupported APIs and reserved ids", () => {
    expect(() => parseBuildpackToml('api = "0.2"\n[buildpack]\nid = "a"\nversion = "1"\n', "bp")).toThrow(
      /api must be/,
    );
    expect(() => parseBuildpackToml('api = "0.10"\n[buildpack]\nid = "app"\nversion = "1"\n', "bp")).toThrow(
      /reserved/,
    );
  });
});
