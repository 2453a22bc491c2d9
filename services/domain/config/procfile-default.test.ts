import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { parseComponentsConfig } from "./parse.js";
import { defaultConfigFromProcfile } from "./procfile-default.js";

describe("defaultConfigFromProcfile", () => {
  it("makes web a continuous webservice published at / and other types continuous workers", () => {
    const config = defaultConfigFromProcfile(["web", "worker", "release"]);
    expect(Object.keys(config.components)).toEqual(["web", "worker"]);
    expect(config.components.web).toMatchObject({
      component_type: "continuous",
      build: { kind: "source", repository: undefined, ref: undefined },
      run: {
        command: "web",
        port: 8000,
        port_protocol: "tcp",
        publish: "/",
        replicas: 1,
        cpu: "100m",
        memory: "512Mi",
      },
    });
    expect(config.components.worker).toMatchObject({
      component_type: "continuous",
      run: { command: "worker", port: undefined, publish: undefined, replicas: 1 },
    });
    expect(config.deploy).toEqual({ branches: undefined, tags: [] });
  });

  it("equals what the same components written in slipway.yaml parse to", () => {
    const written = parseComponentsConfig(
      "components:\n  web:\n    run: {command: web, port: 8000, publish: /}\n  worker:\n    run: {command: worker}\n",
      "slipway.yaml",
    );
    expect(defaultConfigFromProcfile(["web", "worker"])).toEqual(written);
  });

  it("runs the buildpack's web process when there is no Procfile", () => {
    expect(Object.keys(defaultConfigFromProcfile([]).components)).toEqual(["web"]);
    expect(Object.keys(defaultConfigFromProcfile(["release"]).components)).toEqual(["web"]);
  });

  it("turns Procfile names into component names, keeping the command as written", () => {
    const config = defaultConfigFromProcfile(["queue_Worker"]);
    expect(config.components["queue-worker"]?.run.command).toBe("queue_Worker");
    expect(config.components.web).toBeUndefined();
  });

  it("rejects types that cannot be component names, and collisions", () => {
    expect(() => defaultConfigFromProcfile(["-bad"])).toThrow(InputError);
    expect(() => defaultConfigFromProcfile(["a".repeat(53)])).toThrow(/cannot be a component name/);
    expect(() => defaultConfigFromProcfile(["my_worker", "my-worker"])).toThrow(
      /both become component "my-worker"/,
    );
  });
});
