import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { parseComponentsConfig } from "./parse.js";
import { defaultConfigFromProcfile, describeProcfileRoles, procfileRoles } from "./procfile-default.js";

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

  it("runs worker, *worker and clock continuously and defines every other type as a one-off", () => {
    const config = defaultConfigFromProcfile(["web", "worker", "queue-worker", "clock", "custom", "migrate"]);
    const types = Object.fromEntries(Object.values(config.components).map((c) => [c.name, c.component_type]));
    expect(types).toEqual({
      web: "continuous",
      worker: "continuous",
      "queue-worker": "continuous",
      clock: "continuous",
      custom: "one-off",
      migrate: "one-off",
    });
    expect(config.components.custom?.run).toMatchObject({ command: "custom", replicas: undefined, retry: 0 });
  });

  it("makes a one-off type equal what slipway.yaml's one-off component parses to", () => {
    const written = parseComponentsConfig(
      "components:\n  web:\n    run: {command: web, port: 8000, publish: /}\n  migrate:\n    component_type: one-off\n    run: {command: migrate}\n",
      "slipway.yaml",
    );
    expect(defaultConfigFromProcfile(["web", "migrate"])).toEqual(written);
  });

  it("runs the only type of a Procfile without web continuously, and serves nothing", () => {
    expect(defaultConfigFromProcfile(["custom", "release"]).components).toMatchObject({
      custom: { component_type: "continuous", run: { publish: undefined, port: undefined } },
    });
    expect(procfileRoles(["web", "custom"])).toEqual([
      { type: "web", role: "webservice" },
      { type: "custom", role: "one-off" },
    ]);
    expect(procfileRoles(["scheduler", "custom"]).map((r) => r.role)).toEqual(["one-off", "one-off"]);
  });

  it("tells the build log how each type runs", () => {
    expect(describeProcfileRoles(["worker"])).toEqual([
      "===> PROCESSES from the Procfile:",
      "  worker: continuous job, restarted when it exits",
      "  (no web process: nothing is served; add a `web:` line to serve HTTP)",
    ]);
    expect(describeProcfileRoles(["web", "custom", "release"])).toEqual([
      "===> PROCESSES from the Procfile:",
      "  web: webservice, served on $PORT",
      "  custom: defined, not running: start it with `slipway jobs run custom`",
      "  release: release phase, runs once before each rollout",
    ]);
  });
});
