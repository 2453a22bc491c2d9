import { describe, expect, it } from "vitest";
import { loadConfig } from "./env.js";

describe("build backend config", () => {
  it("builds with podman unless SLIPWAY_BUILD_BACKEND names another backend; Tekton's settings are read", () => {
    expect(loadConfig({}, "/repo").buildBackend).toBe("podman");
    const images = {
      buildImage: "h.example/build:1",
      runImage: "h.example/run:1",
      fetchImage: "h.example/git:2",
    };
    const env = {
      SLIPWAY_BUILD_BACKEND: "tekton",
      SLIPWAY_TEKTON_BUILD_IMAGE: images.buildImage,
      SLIPWAY_TEKTON_RUN_IMAGE: images.runImage,
      SLIPWAY_TEKTON_FETCH_IMAGE: images.fetchImage,
    };
    const config = loadConfig(env, "/repo");
    expect(config.buildBackend).toBe("tekton");
    expect(config.tekton).toEqual({
      namespace: "slipway-builds",
      pushSecret: "slipway-registry-push",
      suiteImages: {},
      ...images,
    });
  });

  it("reads the trixie stack's images for cluster builds, both or neither", () => {
    const trixie = { build: "h.example/build:t", run: "h.example/run:t" };
    const config = loadConfig(
      { SLIPWAY_TEKTON_BUILD_IMAGE_TRIXIE: trixie.build, SLIPWAY_TEKTON_RUN_IMAGE_TRIXIE: trixie.run },
      "/repo",
    );
    expect(config.tekton.suiteImages).toEqual({ trixie });
    expect(() => loadConfig({ SLIPWAY_TEKTON_BUILD_IMAGE_TRIXIE: trixie.build }, "/repo")).toThrow(
      /SLIPWAY_TEKTON_BUILD_IMAGE_TRIXIE and SLIPWAY_TEKTON_RUN_IMAGE_TRIXIE go together/,
    );
  });
});
