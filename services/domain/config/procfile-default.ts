import { InputError } from "../../platform/errors.js";
import type { Component, ComponentsConfig } from "./parse.js";
import { DEFAULT_CPU, DEFAULT_MEMORY, MAX_COMPONENT_NAME } from "./schema.js";

/** Webservices listen on `$PORT`, which Slipway sets to 8000 inside the container, as Toolforge does. */
export const WEB_PORT = 8000;

/** Procfile types that are not long-running processes: `release` runs once before each rollout. */
const NOT_A_PROCESS = new Set(["release"]);

/**
 * The components config Slipway uses when a repository has no `slipway.yaml` or `toolforge.yaml`:
 *
 * - Procfile `web` → a continuous webservice `web` listening on port 8000 (`$PORT`), published at `/`.
 * - every other Procfile type (say `worker`) → a continuous component of that name running it, not
 *   published, one replica.
 * - `release` is not a component: it runs before each rollout.
 * - No process types at all (no Procfile: the buildpack's default process is `web`) → just `web`.
 *
 * Every component is built from this repository at the pushed commit, with the default resources. Procfile
 * type names may use `_` and capitals; component names are RFC 1123 labels, so `my_Worker` becomes
 * `my-worker` (the command still names the Procfile type as written).
 *
 * @throws InputError when a type cannot be made into a component name, or two types map to one name.
 */
export function defaultConfigFromProcfile(procfileTypes: readonly string[]): ComponentsConfig {
  const types = procfileTypes.filter((t) => !NOT_A_PROCESS.has(t));
  if (types.length === 0) types.push("web");
  const components: Record<string, Component> = {};
  for (const type of types) {
    const name = type.toLowerCase().replace(/_/g, "-");
    if (name.length > MAX_COMPONENT_NAME || !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name)) {
      throw new InputError(
        `Procfile: process type "${type}" cannot be a component name; use letters, digits, '-' and '_' (at most ${MAX_COMPONENT_NAME}), or add a slipway.yaml that names it`,
        { details: { field: "Procfile", type } },
      );
    }
    if (Object.hasOwn(components, name)) {
      throw new InputError(
        `Procfile: process types "${components[name]!.run.command}" and "${type}" both become component "${name}"`,
        {
          details: { field: "Procfile", type },
        },
      );
    }
    const web = name === "web";
    components[name] = Object.freeze({
      name,
      component_type: "continuous",
      build: Object.freeze({
        kind: "source",
        repository: undefined,
        ref: undefined,
        use_latest_versions: false,
        use_deprecated_versions: false,
      }),
      run: Object.freeze({
        command: type,
        cpu: DEFAULT_CPU,
        cpu_set: false,
        memory: DEFAULT_MEMORY,
        emails: "none",
        filelog: false,
        filelog_stdout: undefined,
        filelog_stderr: undefined,
        mount: "none",
        port: web ? WEB_PORT : undefined,
        port_protocol: "tcp",
        publish: web ? "/" : undefined,
        replicas: 1,
        schedule: undefined,
        retry: undefined,
        timeout: undefined,
        health_check_http: undefined,
        health_check_script: undefined,
      }),
    } satisfies Component);
  }
  return Object.freeze({
    config_version: "v1beta1",
    source_url: undefined,
    components: Object.freeze(components),
    deploy: Object.freeze({ branches: undefined, tags: Object.freeze([]) }),
  });
}
