import { describe, expect, it } from "vitest";
import { ConfigError } from "../../platform/env.js";
import { buildBackend } from "./build-backends/index.js";
import { runtimeProfile } from "./profiles/index.js";

describe("registered runtimes and build backends", () => {
  it("refuses an unknown runtime, naming the variable and the known profiles", async () => {
    const refused = runtimeProfile("docker");
    await expect(refused).rejects.toThrow(ConfigError);
    await expect(refused).rejects.toThrow(
      'no runtime profile "docker" (SLIPWAY_RUNTIME); known: podman, kubernetes',
    );
  });

  it("refuses an unknown build backend, naming the variable and the known backends", async () => {
    await expect(buildBackend("jenkins")).rejects.toThrow(
      'no build backend "jenkins" (SLIPWAY_BUILD_BACKEND); known: podman, tekton, pipelines',
    );
  });

  it("does not take a name inherited from Object for a registered one", async () => {
    await expect(runtimeProfile("toString")).rejects.toThrow(/no runtime profile "toString"/);
  });
});
