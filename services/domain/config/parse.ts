import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document,
  type Node,
  type Tags,
} from "yaml";
import type { z } from "zod";
import { InputError } from "../../platform/errors.js";
import {
  closest,
  componentsConfigSchema,
  DEFAULT_CPU,
  describeValue,
  effectiveType,
  type ComponentType,
  type RawComponent,
  type RawComponentsConfig,
} from "./schema.js";

/** Where Slipway looks for the components config in a tool's repository, in this order. */
export const CONFIG_FILE_NAMES = ["slipway.yaml", "toolforge.yaml"] as const;

/** A config larger than this is a mistake (or an attack), not a components config. */
export const MAX_CONFIG_BYTES = 256 * 1024;

/**
 * A parsed, valid components config with every default applied: the rest of Slipway reads this, never the
 * YAML. Field names are those of the file (snake_case, as in Toolforge).
 */
export interface ComponentsConfig {
  readonly config_version: "v1beta1";
  /** Toolforge re-fetches the config from here on every deploy; Slipway keeps it but does not fetch it. */
  readonly source_url: string | undefined;
  /** In file order. */
  readonly components: Readonly<Record<string, Component>>;
  readonly deploy: ConfigDeployPolicy;
}

export interface Component {
  readonly name: string;
  /** Explicit, or inferred: scheduled when `run.schedule` is set, otherwise continuous. */
  readonly component_type: ComponentType;
  readonly build: ComponentBuild;
  readonly run: ComponentRun;
}

/**
 * `source` with no `repository`: this repository at the pushed commit (a `build:` omitted or holding only
 * `use_*_versions`). `source` with a `repository`: that repository at `ref` (its default branch when absent).
 * `reuse`: the image of another component, which is always itself `source`.
 */
export type ComponentBuild =
  | {
      readonly kind: "source";
      readonly repository: string | undefined;
      readonly ref: string | undefined;
      readonly use_latest_versions: boolean;
      readonly use_deprecated_versions: boolean;
    }
  | { readonly kind: "reuse"; readonly reuse_from: string };

export interface ComponentRun {
  readonly command: string;
  /** Default `100m`. Numbers in the file (`cpu: 1`) become strings (`"1"`). */
  readonly cpu: string;
  /**
   * False when the file gave no `cpu` (so `cpu` is the default): the Kubernetes profile uses the default,
   * the local one its own (`SLIPWAY_RUN_CPUS`). Releases kept from before this field read as false.
   */
  readonly cpu_set: boolean;
  /** Default `512Mi`. */
  readonly memory: string;
  /** Default `none`. */
  readonly emails: "none" | "all" | "onfinish" | "onfailure";
  /** Default false. */
  readonly filelog: boolean;
  readonly filelog_stdout: string | undefined;
  readonly filelog_stderr: string | undefined;
  /** Default `none` (Toolforge's default for buildservice images). */
  readonly mount: "none" | "all";
  /** Continuous only. */
  readonly port: number | undefined;
  /** Default `tcp`. */
  readonly port_protocol: "tcp" | "udp";
  /** URL path the port is served at (`publish: true` means `/`); continuous only. */
  readonly publish: string | undefined;
  /** Continuous: default 1; other types: undefined. */
  readonly replicas: number | undefined;
  /** Scheduled only. */
  readonly schedule: string | undefined;
  /** Scheduled and one-off: default 0; continuous: undefined. */
  readonly retry: number | undefined;
  /** Seconds; scheduled and one-off only. */
  readonly timeout: number | undefined;
  readonly health_check_http: string | undefined;
  readonly health_check_script: string | undefined;
}

/**
 * Which pushed refs deploy. Unlike the tool's stored `DeployPolicy` (tools/tool.ts, where empty `branches` means the default
 * branch), "no branch at all" must be expressible here so that `deploy: { branches: [], tags: ["v*"] }`
 * deploys only tags.
 */
export interface ConfigDeployPolicy {
  /** undefined (omitted in the file): the repository's default branch deploys. `[]`: no branch deploys. */
  readonly branches: readonly string[] | undefined;
  /** `[]` (the default): no tag deploys. */
  readonly tags: readonly string[];
}

/** One problem in a config file; `line` and `column` are 1-based. */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted field path such as `components.web.run.port`; empty for the whole file. */
  readonly path: string;
  readonly message: string;
}

/**
 * Parses and validates a components config (`slipway.yaml` or Toolforge's `toolforge.yaml`).
 *
 * @param fileName how the file is named in messages, e.g. `slipway.yaml`.
 * @throws InputError listing every problem as `file:line:column: field.path: message`, one per line;
 *   `details.problems` holds them as {@link ConfigProblem}s.
 */
export function parseComponentsConfig(text: string, fileName: string): ComponentsConfig {
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) {
    throw configError(fileName, [
      problem(fileName, 1, 1, [], `the file is larger than ${MAX_CONFIG_BYTES / 1024} KiB`),
    ]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    version: "1.1",
    customTags: pyyamlBooleans,
  });
  const at = (offset: number) => lineCounter.linePos(offset);

  if (doc.errors.length > 0) {
    throw configError(
      fileName,
      doc.errors.map((e) => {
        const { line, col } = at(e.pos[0]);
        return problem(fileName, Math.max(line, 1), col, [], `YAML syntax error: ${firstLine(e.message)}`);
      }),
    );
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new InputError(`${fileName}: cannot read the YAML: ${firstLine(String(error))}`, { cause: error });
  }
  if (data === null || data === undefined) {
    throw configError(fileName, [
      problem(
        fileName,
        1,
        1,
        [],
        "the file is empty; it needs a components: map (see docs/config.md), or delete it to run the Procfile's processes",
      ),
    ]);
  }
  if (typeof data !== "object" || Array.isArray(data)) {
    const { line, col } = at(doc.contents?.range?.[0] ?? 0);
    throw configError(fileName, [
      problem(fileName, line, col, [], `expected a map with a components: key, got ${describeValue(data)}`),
    ]);
  }

  const result = componentsConfigSchema.safeParse(data, { reportInput: true, error: defaultMessage });
  if (!result.success) {
    const problems = result.error.issues
      .flatMap((issue) => expandIssue(issue))
      .map(({ path, message, pointAtKey }) => {
        const offset = locate(doc, path, pointAtKey);
        const { line, col } = at(offset);
        return problem(fileName, Math.max(line, 1), col, path, message);
      });
    throw configError(fileName, dedupe(problems));
  }
  return normalize(result.data);
}

const BOOL_TAG = "tag:yaml.org,2002:bool";

/**
 * YAML 1.1, as PyYAML reads toolforge.yaml on Toolforge, so a file Toolforge accepts means the same here:
 * yes/no/on/off are booleans and `<<` merge keys work. Only PyYAML's booleans, though: the 1.1 spec's
 * `y` and `n` stay strings (`command: y` is a command).
 */
function pyyamlBooleans(tags: Tags): Tags {
  return tags.map((tag) => {
    if (typeof tag !== "object" || tag.tag !== BOOL_TAG || !("test" in tag) || !tag.test) return tag;
    return tag.test.test("yes")
      ? { ...tag, test: /^(?:yes|Yes|YES|true|True|TRUE|on|On|ON)$/ }
      : { ...tag, test: /^(?:no|No|NO|false|False|FALSE|off|Off|OFF)$/ };
  });
}

function normalize(raw: RawComponentsConfig): ComponentsConfig {
  const components: Record<string, Component> = {};
  for (const [name, c] of Object.entries(raw.components)) {
    components[name] = normalizeComponent(name, c);
  }
  return Object.freeze({
    config_version: "v1beta1",
    source_url: raw.source_url,
    components: Object.freeze(components),
    deploy: Object.freeze({
      branches: raw.deploy?.branches === undefined ? undefined : Object.freeze([...raw.deploy.branches]),
      tags: Object.freeze([...(raw.deploy?.tags ?? [])]),
    }),
  });
}

function normalizeComponent(name: string, c: RawComponent): Component {
  // The schema passed, so the type is one of COMPONENT_TYPES.
  const type = effectiveType(c) ?? "continuous";
  const b = c.build;
  const build: ComponentBuild =
    b?.reuse_from !== undefined
      ? { kind: "reuse", reuse_from: b.reuse_from }
      : {
          kind: "source",
          repository: b?.repository,
          ref: b?.ref,
          use_latest_versions: b?.use_latest_versions ?? false,
          use_deprecated_versions: b?.use_deprecated_versions ?? false,
        };
  const r = c.run;
  const run: ComponentRun = {
    command: r.command,
    cpu: r.cpu === undefined ? DEFAULT_CPU : String(r.cpu),
    cpu_set: r.cpu !== undefined,
    memory: r.memory,
    emails: r.emails ?? "none",
    filelog: r.filelog ?? false,
    filelog_stdout: r.filelog_stdout,
    filelog_stderr: r.filelog_stderr,
    mount: r.mount ?? "none",
    port: r.port,
    port_protocol: r.port_protocol ?? "tcp",
    publish: r.publish === true ? "/" : r.publish === false ? undefined : r.publish,
    replicas: type === "continuous" ? (r.replicas ?? 1) : undefined,
    schedule: r.schedule?.trim(),
    retry: type === "continuous" ? undefined : (r.retry ?? 0),
    timeout: r.timeout,
    health_check_http: r.health_check_http,
    health_check_script: r.health_check_script,
  };
  return Object.freeze({ name, component_type: type, build: Object.freeze(build), run: Object.freeze(run) });
}

type Issue = z.core.$ZodIssue;
type PathKey = PropertyKey;

/** Messages for issues whose schema gave none: name what was expected and what the file held. */
function defaultMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === "invalid_type") {
    if (issue.input === undefined) return "this field is required";
    const names: Record<string, string> = {
      string: "a string",
      number: "a number",
      int: "a whole number",
      boolean: "true or false",
      object: "a map",
      record: "a map",
      array: "a list",
    };
    return `expected ${names[issue.expected] ?? issue.expected}, got ${describeValue(issue.input)}`;
  }
  if (issue.code === "invalid_value") {
    const values = issue.values.map((v) => String(v));
    const hint = typeof issue.input === "string" ? closest(issue.input, values) : undefined;
    return `expected ${values.length === 1 ? values[0] : `one of ${values.join(", ")}`}, got ${describeValue(issue.input)}${hint ? `; did you mean "${hint}"?` : ""}`;
  }
  return undefined;
}

interface Located {
  readonly path: readonly PathKey[];
  readonly message: string;
  /** Point at the key of the last path segment rather than its value. */
  readonly pointAtKey: boolean;
}

/** One located message per problem; an `unrecognized_keys` issue becomes one problem per key. */
function expandIssue(issue: Issue): Located[] {
  if (issue.code === "unrecognized_keys") {
    const known = knownKeys(issue.path);
    return issue.keys.map((key) => {
      const hint = closest(key, known);
      // A right key at the wrong level, e.g. `schedule:` directly under the component instead of under run:.
      const home = hint ? undefined : known.find((k) => knownKeys([...issue.path, k]).includes(key));
      const advice = hint
        ? `; did you mean "${hint}"?`
        : home
          ? `; it belongs under ${home}:`
          : `; expected one of ${known.join(", ")}`;
      return { path: [...issue.path, key], pointAtKey: true, message: `unknown key "${key}"${advice}` };
    });
  }
  if (issue.code === "invalid_key") {
    const inner = issue.issues[0]?.message ?? issue.message;
    return [{ path: issue.path, pointAtKey: true, message: inner }];
  }
  return [{ path: issue.path, pointAtKey: true, message: issue.message }];
}

/** The keys the schema allows for the object at `path` (used to suggest the key a typo meant). */
function knownKeys(path: readonly PathKey[]): string[] {
  let schema: z.core.$ZodType | undefined = componentsConfigSchema;
  const unwrap = (s: z.core.$ZodType | undefined): z.core.$ZodType | undefined => {
    for (let i = 0; s && i < 10; i++) {
      const def = s._zod.def as unknown as {
        type: string;
        innerType?: z.core.$ZodType;
        in?: z.core.$ZodType;
      };
      if (def.innerType) s = def.innerType;
      else if (def.type === "pipe" && def.in) s = def.in;
      else return s;
    }
    return s;
  };
  for (const key of path) {
    schema = unwrap(schema);
    const def = schema?._zod.def as unknown as
      | { type: "object"; shape: Record<string, z.core.$ZodType> }
      | { type: "record"; valueType: z.core.$ZodType }
      | { type: string }
      | undefined;
    if (def?.type === "object" && "shape" in def) schema = def.shape[String(key)];
    else if (def?.type === "record" && "valueType" in def) schema = def.valueType;
    else return [];
  }
  const def = unwrap(schema)?._zod.def as unknown as
    { type: string; shape?: Record<string, unknown> } | undefined;
  return def?.type === "object" && def.shape ? Object.keys(def.shape) : [];
}

/**
 * The source offset for a field path: the key of the deepest pair that exists along the path (so a missing
 * field points at its parent), or the value node when `pointAtKey` is false or there is no key (list items).
 */
function locate(doc: Document, path: readonly PathKey[], pointAtKey: boolean): number {
  let node: unknown = doc.contents;
  let best = doc.contents?.range?.[0] ?? 0;
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) return best;
      const keyStart = (pair.key as Node).range?.[0];
      const valueStart = isNodeWithRange(pair.value) ? pair.value.range[0] : undefined;
      best = (pointAtKey ? keyStart : (valueStart ?? keyStart)) ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      const item: unknown = node.items[segment];
      if (!isNodeWithRange(item)) return best;
      best = item.range[0];
      node = item;
    } else {
      return best;
    }
  }
  return best;
}

function isNodeWithRange(v: unknown): v is Node & { range: [number, number, number] } {
  return typeof v === "object" && v !== null && "range" in v && Array.isArray(v.range);
}

/** `components.web.run.port`; keys that are not plain identifiers are bracketed: `components["a.b"]`. */
export function formatPath(path: readonly PathKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(String(key))) out += out ? `.${String(key)}` : String(key);
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

function problem(
  file: string,
  line: number,
  column: number,
  path: readonly PathKey[],
  message: string,
): ConfigProblem {
  return { file, line, column, path: formatPath(path), message };
}

/** `file:line:col: path: message` */
export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.path ? `${p.path}: ` : ""}${p.message}`;
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems
    .filter((p) => {
      const k = formatProblem(p);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.column - b.column);
}

/** The message lists at most this many problems; `details.problems` holds all of them. */
const MAX_LISTED_PROBLEMS = 50;

function configError(fileName: string, problems: ConfigProblem[]): InputError {
  const lines = problems.slice(0, MAX_LISTED_PROBLEMS).map(formatProblem);
  if (problems.length > MAX_LISTED_PROBLEMS)
    lines.push(`... and ${problems.length - MAX_LISTED_PROBLEMS} more`);
  const message =
    problems.length === 1 ? lines[0]! : `${fileName} has ${problems.length} problems:\n${lines.join("\n")}`;
  return new InputError(message, { details: { file: fileName, problems } });
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}
