import { InputError } from "../../platform/errors.js";
import type { Component, ComponentsConfig } from "./parse.js";
import { DEFAULT_CPU, DEFAULT_MEMORY, MAX_COMPONENT_NAME } from "./schema.js";

/** Webservices listen on `$PORT`, which Slipway sets to 8000 inside the container, as Toolforge does. */
export const WEB_PORT = 8000;

/**
 * How a Procfile process type runs when no config file says otherwise, after Heroku and Dokku:
 *
 * - `webservice`: `web`, served at `/` on `$PORT`.
 * - `continuous`: `worker`, any `*worker` (`queue-worker`, `sidekiqworker`), `clock`, and, when there is
 *   no `web`, the only type: supervised jobs, restarted when they exit.
 * - `one-off`: every other type (`migrate`, `console`, `custom`): defined as a job of the release but
 *   started only by `slipway jobs run NAME`, or by a slipway.yaml that makes it continuous. Running
 *   them continuously restarted one-shot commands forever.
 * - `release`: not a component; it runs once before each rollout.
 */
export type ProcfileRole = "webservice" | "continuous" | "one-off" | "release";

/** The role of each Procfile type, in the Procfile's order (see ProcfileRole). */
export function procfileRoles(procfileTypes: readonly string[]): { type: string; role: ProcfileRole }[] {
  const processes = procfileTypes.filter((t) => t !== "release");
  const onlyOne = processes.length === 1 && !processes.includes("web");
  return procfileTypes.map((type) => {
    const name = componentName(type);
    const role: ProcfileRole =
      type === "release"
        ? "release"
        : name === "web"
          ? "webservice"
          : onlyOne || name === "clock" || name.endsWith("worker")
            ? "continuous"
            : "one-off";
    return { type, role };
  });
}

/** `===> PROCESSES from the Procfile:` and one line per type saying how it runs, for the build log. */
export function describeProcfileRoles(procfileTypes: readonly string[]): string[] {
  const how: Record<ProcfileRole, string> = {
    webservice: "webservice, served on $PORT",
    continuous: "continuous job, restarted when it exits",
    "one-off": "defined, not running: start it with `slipway jobs run NAME`",
    release: "release phase, runs once before each rollout",
  };
  const roles = procfileRoles(procfileTypes);
  return [
    "===> PROCESSES from the Procfile:",
    ...roles.map(({ type, role }) => `  ${type}: ${how[role].replace("NAME", componentName(type))}`),
    ...(roles.some((r) => r.role === "webservice")
      ? []
      : ["  (no web process: nothing is served; add a `web:` line to serve HTTP)"]),
  ];
}

function componentName(type: string): string {
  return type.toLowerCase().replace(/_/g, "-");
}

/**
 * The components config Slipway uses when a repository has no `slipway.yaml` or `toolforge.yaml`:
 *
 * - Procfile `web` → a continuous webservice `web` listening on port 8000 (`$PORT`), published at `/`.
 * - `worker`, `*worker`, `clock`, and the only type of a Procfile without `web` → a continuous
 *   component of that name running it, not published, one replica. A release without a `web`
 *   component has no webservice at all.
 * - every other type → a one-off component: defined, run on demand (`slipway jobs run NAME`).
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
  const roles = procfileRoles(procfileTypes).filter((r) => r.role !== "release");
  if (roles.length === 0) roles.push({ type: "web", role: "webservice" });
  const components: Record<string, Component> = {};
  for (const { type, role } of roles) {
    const name = componentName(type);
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
    const web = role === "webservice";
    const continuous = role !== "one-off";
    components[name] = Object.freeze({
      name,
      component_type: continuous ? "continuous" : "one-off",
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
        replicas: continuous ? 1 : undefined,
        schedule: undefined,
        retry: continuous ? undefined : 0,
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
