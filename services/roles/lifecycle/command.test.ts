import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { parseCommand, parseSettings } from "./command.js";
import { parseImage } from "./run.js";

function problem(f: () => unknown): string {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return (error as Error).message;
  }
  throw new Error("expected an InputError");
}

describe("slipway-lifecycle arguments", () => {
  it("parses the commands the pipelines' Tasks call", () => {
    expect(parseCommand(["detect"])).toEqual({ name: "detect" });
    expect(parseCommand(["restore", "--no-cache=true"])).toEqual({ name: "restore", noCache: true });
    expect(parseCommand(["restore"])).toEqual({ name: "restore", noCache: false });
    expect(parseCommand(["build", "--processes-result=/tekton/results/processes"])).toEqual({
      name: "build",
      processesResult: "/tekton/results/processes",
    });
    expect(parseCommand(["save-cache"])).toEqual({ name: "save-cache" });
    expect(
      parseCommand([
        "export",
        "--image=registry.example:5000/tool-x/web:abc",
        "--run-image=registry.example:5000/slipway/run:s1",
        "--commit=abc",
        "--source-url=https://git.example/x.git",
        "--digest-result=/r/d",
        "--image-result=/r/i",
      ]),
    ).toEqual({
      name: "export",
      image: "registry.example:5000/tool-x/web:abc",
      runImage: "registry.example:5000/slipway/run:s1",
      commit: "abc",
      sourceUrl: "https://git.example/x.git",
      digestResult: "/r/d",
      imageResult: "/r/i",
      layerCache: undefined,
    });
    // Tekton gives an unbound optional workspace's path as "": no layer cache, not an error.
    const base = ["export", "--image=h.x/r:t", "--run-image=h.x/s:t", "--commit=c", "--source-url=u"];
    expect(parseCommand([...base, "--layer-cache="])).toMatchObject({ layerCache: undefined });
    expect(parseCommand([...base, "--layer-cache=/workspace/layer-cache/"])).toMatchObject({
      layerCache: "/workspace/layer-cache",
    });
  });

  it("refuses what it does not know, naming it, with the usage", () => {
    expect(problem(() => parseCommand([]))).toMatch(/no command given[\s\S]*usage: slipway-lifecycle/);
    expect(problem(() => parseCommand(["deploy"]))).toContain('unknown command "deploy"');
    expect(problem(() => parseCommand(["detect", "--no-cache=true"]))).toContain(
      "detect: unknown option --no-cache",
    );
    expect(problem(() => parseCommand(["restore", "--no-cache=yes"]))).toContain(
      'restore: --no-cache must be true or false, not "yes"',
    );
    expect(problem(() => parseCommand(["restore", "--no-cache"]))).toContain("--no-cache needs a value");
    expect(problem(() => parseCommand(["build", "extra"]))).toContain('build: unexpected argument "extra"');
    expect(problem(() => parseCommand(["save-cache", "--x=1", "--x=2"]))).toContain("unknown option --x");
    expect(problem(() => parseCommand(["export", "--image=h/r:t"]))).toContain(
      "export: --run-image is required",
    );
    expect(
      problem(() =>
        parseCommand([
          "export",
          "--image=h.x/r:t",
          "--run-image=h.x/s:t",
          "--commit=c",
          "--source-url=u",
          "--layer-cache=cache",
        ]),
      ),
    ).toContain('export: --layer-cache must be an absolute path, not "cache"');
    expect(
      problem(() => parseCommand(["build", "--processes-result=/a", "--processes-result=/b"])),
    ).toContain("--processes-result is given twice");
  });

  it("reads the environment once and reports every problem at once", () => {
    const settings = parseSettings({
      SLIPWAY_APP_DIR: "/workspace",
      SLIPWAY_LAYERS_DIR: "/layers/",
      SLIPWAY_CACHE_DIR: "/cache",
      SOURCE_DATE_EPOCH: "1700000000",
      SLIPWAY_TOOL: "mytool",
      SLIPWAY_COMPONENT: "web",
      DOCKER_CONFIG: "/push",
    });
    expect(settings).toMatchObject({
      appDir: "/workspace",
      layersDir: "/layers",
      cacheDir: "/cache",
      sourceDateEpoch: 1_700_000_000,
      tool: "mytool",
      component: "web",
      buildpacksDir: "/cnb/slipway/buildpacks",
      dockerConfigDir: "/push",
    });
    const message = problem(() => parseSettings({ SLIPWAY_APP_DIR: "app", SOURCE_DATE_EPOCH: "yesterday" }));
    expect(message).toContain('SLIPWAY_APP_DIR must be an absolute path, not "app"');
    expect(message).toContain("SLIPWAY_LAYERS_DIR is not set");
    expect(message).toContain('SOURCE_DATE_EPOCH must be the commit time in seconds, not "yesterday"');
  });

  it("takes the package mirrors the build Task passes, empty meaning the public ones, and refuses a non-URL", () => {
    const base = { SLIPWAY_APP_DIR: "/app", SLIPWAY_LAYERS_DIR: "/layers", SOURCE_DATE_EPOCH: "1" };
    expect(
      parseSettings({
        ...base,
        SLIPWAY_NPM_REGISTRY: "https://npm.internal/",
        SLIPWAY_DEBIAN_MIRROR: "",
        SLIPWAY_PIP_INDEX_URL: "http://pypi.internal/simple/",
      }),
    ).toMatchObject({
      npmRegistry: "https://npm.internal/",
      debianMirror: undefined,
      pipIndexUrl: "http://pypi.internal/simple/",
    });
    const message = problem(() =>
      parseSettings({ ...base, SLIPWAY_PIP_INDEX_URL: "pypi.internal", SLIPWAY_NPM_REGISTRY: "file:///npm" }),
    );
    expect(message).toContain('SLIPWAY_PIP_INDEX_URL must be an http(s) URL, not "pypi.internal"');
    expect(message).toContain('SLIPWAY_NPM_REGISTRY must be an http(s) URL, not "file:///npm"');
  });

  it("takes image references with their registry host only", () => {
    expect(parseImage("127.0.0.1:5000/tool-x/web:abc", "--image")).toEqual({
      host: "127.0.0.1:5000",
      repository: "tool-x/web",
      tag: "abc",
    });
    expect(problem(() => parseImage("tool-x/web:abc", "--image"))).toContain(
      '--image must start with the registry host, not "tool-x/web:abc"',
    );
    expect(problem(() => parseImage("tool-x/web", "--image"))).toContain(
      '--image must be <registry host>/<repository>:<tag>, not "tool-x/web"',
    );
  });
});
