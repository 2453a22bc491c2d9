import { describe, expect, it } from "vitest";
import type { BuildSandbox, Sandbox, SandboxSpec } from "../../ports/sandbox.js";
import { WarmSandbox } from "./warm-sandbox.js";

/** Containers by name, as podman holds them: a start under a name in use replaces that container. */
class FakePodman implements BuildSandbox {
  readonly running = new Map<string, SandboxSpec>();
  readonly events: string[] = [];
  failNext = false;

  start(spec: SandboxSpec): Promise<Sandbox> {
    if (this.failNext) {
      this.failNext = false;
      this.events.push(`start failed ${spec.image}`);
      return Promise.reject(new Error("podman run failed"));
    }
    this.events.push(`start ${spec.image}`);
    this.running.set(spec.name, spec);
    return Promise.resolve({
      exec: () => Promise.resolve({ exitCode: 0 }),
      close: () => {
        this.events.push(`remove ${spec.name}`);
        this.running.delete(spec.name);
        return Promise.resolve();
      },
    });
  }
}

const spec = (image = "build:default", extra: SandboxSpec["mounts"] = []): SandboxSpec => ({
  name: "slipway-build-b1",
  buildId: "b1",
  image,
  user: "1000:1000",
  memoryMb: 512,
  cpus: 1,
  env: {},
  mounts: [{ host: "/work/b1/app", container: "/workspace", readOnly: false }, ...extra],
});

describe("a sandbox started while the source is fetched", () => {
  it("is the one the build gets when it asks for the same spec: one container start in all", async () => {
    const podman = new FakePodman();
    const warm = new WarmSandbox(podman);
    warm.prestart(Promise.resolve(spec()));
    const sandbox = await warm.start(spec());
    await warm.discard();
    expect(podman.events).toEqual(["start build:default"]);
    expect(podman.running.has("slipway-build-b1")).toBe(true);
    await sandbox.close();
    expect(podman.running.size).toBe(0);
  });

  it("is removed before another is started when the build asks for something else (another stack, inline buildpacks)", async () => {
    const podman = new FakePodman();
    const warm = new WarmSandbox(podman);
    warm.prestart(Promise.resolve(spec()));
    await warm.start(spec("build:trixie"));
    // The removal comes first: both have the build's name, and removing by name afterwards would end the new one.
    expect(podman.events).toEqual(["start build:default", "remove slipway-build-b1", "start build:trixie"]);
    expect(podman.running.get("slipway-build-b1")?.image).toBe("build:trixie");

    const inline = new WarmSandbox(podman);
    inline.prestart(Promise.resolve(spec()));
    const more = [{ host: "/work/b1/inline-buildpacks/x", container: "/cnb/buildpacks/x/1", readOnly: true }];
    await inline.start(spec("build:default", more));
    expect(podman.running.get("slipway-build-b1")?.mounts).toHaveLength(2);
  });

  it("is removed by discard when no build took it (a failed fetch, a push the deploy policy stopped)", async () => {
    const podman = new FakePodman();
    const warm = new WarmSandbox(podman);
    warm.prestart(Promise.resolve(spec()));
    await warm.discard();
    expect(podman.running.size).toBe(0);
    await warm.discard();
    expect(podman.events).toEqual(["start build:default", "remove slipway-build-b1"]);
  });

  it("costs the build nothing but the attempt when it failed to start, or its spec could not be worked out", async () => {
    const podman = new FakePodman();
    podman.failNext = true;
    const warm = new WarmSandbox(podman);
    warm.prestart(Promise.resolve(spec()));
    await warm.start(spec());
    expect(podman.events).toEqual(["start failed build:default", "start build:default"]);

    const unknown = new WarmSandbox(podman);
    unknown.prestart(Promise.reject(new Error("buildpack.toml unreadable")));
    await unknown.start(spec());
    expect(podman.running.get("slipway-build-b1")?.image).toBe("build:default");
  });

  it("without a prestart, starts as the sandbox it wraps does", async () => {
    const podman = new FakePodman();
    await new WarmSandbox(podman).start(spec());
    expect(podman.events).toEqual(["start build:default"]);
  });
});
