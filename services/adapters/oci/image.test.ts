import { describe, expect, it } from "vitest";
import type { LifecycleResult } from "../../domain/lifecycle/types.js";
import { canonicalJson, imageConfig, withoutCredentials } from "./image.js";
import type { LayerBlob } from "./layer.js";

const blob = (n: number): LayerBlob => ({
  diffId: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  digest: `sha256:${String(n + 1)
    .repeat(64)
    .slice(0, 64)}`,
  size: n,
  mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
  path: `/tmp/${n}`,
});

const result: LifecycleResult = {
  group: [{ id: "slipway/nodejs", version: "1.0.0", api: "0.10" }],
  processes: [
    { type: "worker", command: ["node"], args: ["w.js"], default: false, buildpackId: "slipway/nodejs" },
  ],
  layers: [
    { buildpackId: "slipway/nodejs", name: "node", hostDir: "/x", imagePath: "/layers/slipway_nodejs/node" },
  ],
  appDir: "/app",
  cnbDir: "/cnb",
  labels: [{ key: "io.buildpacks.build.metadata", value: "spoofed" }],
};

function configOf(process: LifecycleResult["processes"][number] | undefined) {
  return imageConfig({
    result,
    layers: { base: blob(1), launch: [blob(2)], cnb: blob(3), app: blob(4) },
    uid: 1000,
    gid: 1000,
    sourceDateEpoch: 315532801,
    architecture: "amd64",
    process,
    runEnv: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
    runImage: { image: "slipway/run", stackId: "s1" },
    source: { commit: "abc", repository: "https://oauth2:glpat-secret@gitlab.example/t.git" },
  }).config as {
    created: string;
    config: { Entrypoint: string[]; Env: string[]; Labels: Record<string, string> };
    rootfs: { diff_ids: string[] };
  };
}

describe("imageConfig", () => {
  it("starts the bare launcher when no process is the default", () => {
    expect(configOf(undefined).config.Entrypoint).toEqual(["/cnb/lifecycle/launcher"]);
    expect(configOf(result.processes[0]).config.Entrypoint).toEqual(["/cnb/process/worker"]);
  });

  it("orders layers base, launch, launcher, app and dates everything SOURCE_DATE_EPOCH", () => {
    const c = configOf(undefined);
    expect(c.rootfs.diff_ids).toEqual([blob(1), blob(2), blob(3), blob(4)].map((b) => b.diffId));
    expect(c.created).toBe("1980-01-01T00:00:01Z");
  });

  it("puts /cnb/process first on the run image's PATH and keeps its other variables", () => {
    const env = configOf(undefined).config.Env;
    expect(env).toEqual([
      "CNB_APP_DIR=/workspace",
      "CNB_LAYERS_DIR=/layers",
      "LANG=C.UTF-8",
      "PATH=/cnb/process:/usr/bin:/bin",
    ]);
  });

  it("never lets a buildpack label replace Slipway's, and never bakes clone credentials in", () => {
    const text = JSON.stringify(configOf(undefined));
    const labels = configOf(undefined).config.Labels;
    expect(labels["io.buildpacks.build.metadata"]).not.toBe("spoofed");
    expect(text).not.toContain("glpat-secret");
    expect(labels["org.opencontainers.image.source"]).toBe("https://gitlab.example/t.git");
  });
});

describe("canonicalJson", () => {
  it("sorts keys at every level and keeps array order", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });
});

describe("withoutCredentials", () => {
  it("drops user and password from URLs and leaves scp-style remotes alone", () => {
    expect(withoutCredentials("https://u:p@h/x.git")).toBe("https://h/x.git");
    expect(withoutCredentials("git@gitlab.com:a/b.git")).toBe("git@gitlab.com:a/b.git");
  });
});
