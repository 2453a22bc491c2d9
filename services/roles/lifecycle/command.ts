import path from "node:path";
import { InputError } from "../../platform/errors.js";

/** Where the program finds its buildpacks in the build image (see docs/tekton.md, packaging). */
export const DEFAULT_BUILDPACKS_DIR = "/cnb/slipway/buildpacks";

export const USAGE = `usage: slipway-lifecycle <command> [options]
  detect
  restore [--no-cache=true|false]
  build --processes-result=<path>
  save-cache
  export --image=<host/repository:tag> --run-image=<host/repository:tag> --commit=<sha>
         --source-url=<url> [--digest-result=<path>] [--image-result=<path>] [--layer-cache=<dir>]
environment: SLIPWAY_APP_DIR, SLIPWAY_LAYERS_DIR, SLIPWAY_CACHE_DIR (restore, save-cache),
  SOURCE_DATE_EPOCH, SLIPWAY_TOOL, SLIPWAY_COMPONENT; optional package mirrors SLIPWAY_NPM_REGISTRY,
  SLIPWAY_DEBIAN_MIRROR, SLIPWAY_PIP_INDEX_URL; export: DOCKER_CONFIG (a directory with config.json)`;

/** What every phase works on, from the environment the Task (or the local runner) gives it. */
export interface LifecycleSettings {
  readonly appDir: string;
  readonly layersDir: string;
  /** Absent: detect and build need none; restore and save-cache refuse to run without it. */
  readonly cacheDir: string | undefined;
  readonly sourceDateEpoch: number;
  readonly tool: string | undefined;
  readonly component: string | undefined;
  readonly buildpacksDir: string;
  readonly npmRegistry: string | undefined;
  readonly debianMirror: string | undefined;
  /** The Python package index pip installs from; pip's default when absent. */
  readonly pipIndexUrl: string | undefined;
  /** The directory holding the push credential's config.json (export only). */
  readonly dockerConfigDir: string | undefined;
}

export interface ExportOptions {
  readonly image: string;
  readonly runImage: string;
  readonly commit: string;
  readonly sourceUrl: string;
  readonly digestResult: string | undefined;
  readonly imageResult: string | undefined;
  /**
   * The component's layer cache, a directory only export steps write: a layer whose files did not
   * change since the last export is taken from it instead of being tarred and gzipped again. Empty or
   * absent (an unbound optional workspace): every layer is written.
   */
  readonly layerCache: string | undefined;
}

export type LifecycleCommand =
  | { readonly name: "detect" }
  | { readonly name: "restore"; readonly noCache: boolean }
  | { readonly name: "build"; readonly processesResult: string | undefined }
  | { readonly name: "save-cache" }
  | ({ readonly name: "export" } & ExportOptions);

const OPTIONS: Record<LifecycleCommand["name"], readonly string[]> = {
  detect: [],
  restore: ["no-cache"],
  build: ["processes-result"],
  "save-cache": [],
  export: ["image", "run-image", "commit", "source-url", "digest-result", "image-result", "layer-cache"],
};

/**
 * Parses `slipway-lifecycle <command> [--name=value …]`. Throws InputError naming the bad argument,
 * with the usage, for anything it does not know: a step that runs with a typo must not half-work.
 */
export function parseCommand(argv: readonly string[]): LifecycleCommand {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") throw usageError("no command given");
  if (!isCommandName(name)) throw usageError(`unknown command ${JSON.stringify(name)}`);
  const values = new Map<string, string>();
  for (const arg of rest) {
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!match) throw usageError(`${name}: unexpected argument ${JSON.stringify(arg)}`);
    const [, key, value] = match as unknown as [string, string, string | undefined];
    if (!OPTIONS[name].includes(key)) throw usageError(`${name}: unknown option --${key}`);
    if (value === undefined) throw usageError(`${name}: --${key} needs a value (--${key}=…)`);
    if (values.has(key)) throw usageError(`${name}: --${key} is given twice`);
    values.set(key, value);
  }
  const required = (key: string): string => {
    const value = values.get(key);
    if (!value) throw usageError(`${name}: --${key} is required`);
    return value;
  };
  switch (name) {
    case "detect":
    case "save-cache":
      return { name };
    case "restore": {
      const noCache = values.get("no-cache") ?? "false";
      if (noCache !== "true" && noCache !== "false")
        throw usageError(`restore: --no-cache must be true or false, not ${JSON.stringify(noCache)}`);
      return { name, noCache: noCache === "true" };
    }
    case "build":
      return { name, processesResult: values.get("processes-result") };
    case "export":
      return {
        name,
        image: required("image"),
        runImage: required("run-image"),
        commit: required("commit"),
        sourceUrl: required("source-url"),
        digestResult: values.get("digest-result"),
        imageResult: values.get("image-result"),
        layerCache: layerCacheDir(values.get("layer-cache")),
      };
  }
}

/** `--layer-cache`: empty is none (Tekton gives an unbound optional workspace's path as ""). */
function layerCacheDir(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (!path.isAbsolute(value))
    throw usageError(`export: --layer-cache must be an absolute path, not ${JSON.stringify(value)}`);
  return path.resolve(value);
}

/** Reads the settings from the environment, reporting every problem at once. */
export function parseSettings(env: Readonly<Record<string, string | undefined>>): LifecycleSettings {
  const problems: string[] = [];
  const absolute = (key: string, required: boolean): string | undefined => {
    const value = env[key];
    if (value === undefined || value === "") {
      if (required) problems.push(`${key} is not set`);
      return undefined;
    }
    if (!path.isAbsolute(value))
      problems.push(`${key} must be an absolute path, not ${JSON.stringify(value)}`);
    return path.resolve(value);
  };
  const appDir = absolute("SLIPWAY_APP_DIR", true);
  const layersDir = absolute("SLIPWAY_LAYERS_DIR", true);
  const cacheDir = absolute("SLIPWAY_CACHE_DIR", false);
  const buildpacksDir = absolute("SLIPWAY_BUILDPACKS_DIR", false) ?? DEFAULT_BUILDPACKS_DIR;
  const dockerConfigDir = absolute("DOCKER_CONFIG", false);
  // The Task passes every mirror, set or not: empty means the public one. A value must be a URL, or
  // the first buildpack to use it would fail far from the cause.
  const mirror = (key: string): string | undefined => {
    const value = env[key];
    if (!value) return undefined;
    if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol))
      problems.push(`${key} must be an http(s) URL, not ${JSON.stringify(value)}`);
    return value;
  };
  const npmRegistry = mirror("SLIPWAY_NPM_REGISTRY");
  const debianMirror = mirror("SLIPWAY_DEBIAN_MIRROR");
  const pipIndexUrl = mirror("SLIPWAY_PIP_INDEX_URL");
  const epochText = env.SOURCE_DATE_EPOCH ?? "";
  if (!/^\d{1,12}$/.test(epochText))
    problems.push(`SOURCE_DATE_EPOCH must be the commit time in seconds, not ${JSON.stringify(epochText)}`);
  if (problems.length > 0)
    throw new InputError(`slipway-lifecycle cannot start:\n  ${problems.join("\n  ")}\n${USAGE}`);
  return {
    appDir: appDir!,
    layersDir: layersDir!,
    cacheDir,
    sourceDateEpoch: Number(epochText),
    tool: env.SLIPWAY_TOOL || undefined,
    component: env.SLIPWAY_COMPONENT || undefined,
    buildpacksDir,
    npmRegistry,
    debianMirror,
    pipIndexUrl,
    dockerConfigDir,
  };
}

function isCommandName(name: string): name is LifecycleCommand["name"] {
  return Object.hasOwn(OPTIONS, name);
}

function usageError(problem: string): InputError {
  return new InputError(`${problem}\n${USAGE}`);
}
