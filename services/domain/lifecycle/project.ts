import { chmod, lstat, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { parse, stringify } from "smol-toml";
import { InputError, errorMessage } from "../../platform/errors.js";
import { SUPPORTED_APIS, asTable } from "./buildpack.js";
import { ENV_NAME } from "./env.js";

/**
 * What Slipway reads from an app's `project.toml` (CNB project descriptor, schema 0.2,
 * `buildpacks/spec` `extensions/project-descriptor.md`). The platform, not the buildpacks, reads it:
 * build env becomes platform env, include/exclude prune the app before detection, groups replace the
 * detect order. Other tables (`[_]` metadata, `[com.heroku…]`, …) belong to their owners and are ignored.
 */
export interface ProjectDescriptor {
  /** `[[io.buildpacks.build.env]]`: exported to every buildpack's detect and build, never to the image. */
  readonly buildEnv: Readonly<Record<string, string>>;
  /** At most one of include/exclude: gitignore-style patterns over paths relative to the app root. */
  readonly include?: readonly string[] | undefined;
  readonly exclude?: readonly string[] | undefined;
  /** `[[io.buildpacks.group]]`, with the pre/post groups around it; undefined = detect order as usual. */
  readonly group?: readonly ProjectGroupEntry[] | undefined;
  readonly pre: readonly ProjectGroupEntry[];
  readonly post: readonly ProjectGroupEntry[];
}

export type ProjectGroupEntry =
  | { readonly kind: "ref"; readonly id: string; readonly version?: string | undefined }
  | {
      readonly kind: "inline";
      readonly id: string;
      readonly version: string;
      readonly api: string;
      readonly shell: string;
      readonly inline: string;
    };

export const PROJECT_FILE = "project.toml";
const SCHEMA = "0.2";

/** Parses `project.toml`; every problem names the file and the field (InputError). */
export function parseProjectToml(text: string, source = PROJECT_FILE): ProjectDescriptor {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (error) {
    throw new InputError(`${source}: not valid TOML: ${errorMessage(error)}`, { cause: error });
  }
  const fail = (field: string, message: string) => new InputError(`${source}: ${field} ${message}`);
  const meta = asTable(doc._);
  const io = asTable(asTable(doc.io)?.buildpacks);
  if (doc._ !== undefined && !meta) throw fail("[_]", "must be a table");
  if (!meta) {
    if (doc.project !== undefined || doc.build !== undefined)
      throw fail(
        "[_] schema-version",
        `is missing: schema 0.1 ([project], [build]) is not supported; add [_] schema-version = "${SCHEMA}" and move [build] settings to [io.buildpacks]`,
      );
    if (io)
      throw fail("[_] schema-version", `is required when [io.buildpacks] is used (set it to "${SCHEMA}")`);
    // A file that only configures other tools (e.g. [com.heroku.buildpacks.deb-packages]).
    return { buildEnv: {}, pre: [], post: [] };
  }
  if (meta["schema-version"] !== SCHEMA)
    throw fail(
      "[_] schema-version",
      `must be "${SCHEMA}" (got ${JSON.stringify(meta["schema-version"] ?? null)})`,
    );
  if (doc.io !== undefined && !asTable(doc.io)) throw fail("io", "must be a table");
  if (asTable(doc.io)?.buildpacks !== undefined && !io) throw fail("[io.buildpacks]", "must be a table");
  if (!io) return { buildEnv: {}, pre: [], post: [] };

  const strings = (value: unknown, field: string): string[] | undefined => {
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
      throw fail(field, "must be an array of strings");
    return value as string[];
  };
  const include = strings(io.include, "[io.buildpacks] include");
  const exclude = strings(io.exclude, "[io.buildpacks] exclude");
  if (include && exclude)
    throw fail("[io.buildpacks]", "may have include or exclude, not both (the spec allows only one)");
  for (const [field, list] of [
    ["include", include],
    ["exclude", exclude],
  ] as const) {
    for (const [i, p] of (list ?? []).entries()) {
      try {
        compilePattern(p);
      } catch (error) {
        throw fail(`[io.buildpacks] ${field}[${i}]`, errorMessage(error));
      }
    }
  }

  const buildEnv: Record<string, string> = {};
  const build = io.build === undefined ? undefined : asTable(io.build);
  if (io.build !== undefined && !build) throw fail("[io.buildpacks.build]", "must be a table");
  for (const [i, e] of tableArray(build?.env, "[[io.buildpacks.build.env]]", fail).entries()) {
    const field = `[[io.buildpacks.build.env]] #${i + 1}`;
    if (typeof e.name !== "string" || !ENV_NAME.test(e.name))
      throw fail(
        `${field} name`,
        `must be an environment variable name (got ${JSON.stringify(e.name ?? null)})`,
      );
    if (e.name.startsWith("CNB_")) throw fail(`${field} name`, `${e.name}: the CNB_ prefix is reserved`);
    if (typeof e.value !== "string") throw fail(`${field} value`, "must be a string");
    buildEnv[e.name] = e.value;
  }

  const groupOf = (value: unknown, table: string): ProjectGroupEntry[] =>
    tableArray(value, `[[${table}]]`, fail).map((e, i) => groupEntry(e, `[[${table}]] #${i + 1}`, fail));
  const groupValue = io.group;
  const group = groupValue === undefined ? undefined : groupOf(groupValue, "io.buildpacks.group");
  const sub = (name: "pre" | "post") => {
    const t = io[name];
    if (t === undefined) return [];
    if (!asTable(t)) throw fail(`[io.buildpacks.${name}]`, "must be a table");
    return groupOf(asTable(t)!.group, `io.buildpacks.${name}.group`);
  };
  const pre = sub("pre");
  const post = sub("post");
  const all = [...pre, ...(group ?? []), ...post];
  const seen = new Set<string>();
  for (const e of all) {
    if (seen.has(e.id)) throw fail("[[io.buildpacks.group]]", `names ${e.id} twice`);
    seen.add(e.id);
  }
  return { buildEnv, include, exclude, group: group?.length ? group : undefined, pre, post };
}

type Fail = (field: string, message: string) => InputError;

function tableArray(value: unknown, field: string, fail: Fail): Record<string, unknown>[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => !asTable(v)))
    throw fail(field, "must be an array of tables");
  return value as Record<string, unknown>[];
}

const BUILDPACK_ID = /^[A-Za-z0-9./-]+$/;

function groupEntry(e: Record<string, unknown>, field: string, fail: Fail): ProjectGroupEntry {
  if (e.uri !== undefined)
    throw fail(
      `${field} uri`,
      'is not supported: Slipway builds only with its own buildpacks (use id = "…") or inline scripts',
    );
  if (typeof e.id !== "string" || !BUILDPACK_ID.test(e.id))
    throw fail(
      `${field} id`,
      `must be a buildpack id matching [A-Za-z0-9./-]+ (got ${JSON.stringify(e.id ?? null)})`,
    );
  if (e.version !== undefined && (typeof e.version !== "string" || e.version === ""))
    throw fail(`${field} version`, "must be a non-empty string");
  const version = e.version;
  if (e.script === undefined) return { kind: "ref", id: e.id, version };
  const script = asTable(e.script);
  if (!script) throw fail(`${field} script`, "must be a table");
  if (typeof script.api !== "string" || script.api === "")
    throw fail(`${field} script.api`, 'is required (the Buildpack API of the script, e.g. "0.10")');
  if (!SUPPORTED_APIS.includes(script.api))
    throw fail(`${field} script.api`, `must be one of ${SUPPORTED_APIS.join(", ")} (got "${script.api}")`);
  if (typeof script.inline !== "string" || script.inline.trim() === "")
    throw fail(`${field} script.inline`, "is required (the build script)");
  const shell = script.shell ?? "/bin/sh";
  // The shell becomes the script's #! line: one absolute path, nothing a shebang would split or run.
  if (typeof shell !== "string" || !/^\/[A-Za-z0-9._/-]+$/.test(shell))
    throw fail(
      `${field} script.shell`,
      `must be an absolute path such as /bin/bash (got ${JSON.stringify(shell)})`,
    );
  return {
    kind: "inline",
    id: e.id,
    version: version ?? "0.0.0",
    api: script.api,
    shell,
    inline: script.inline,
  };
}

// --- include / exclude ----------------------------------------------------------------------------

interface Pattern {
  readonly negate: boolean;
  readonly dirOnly: boolean;
  readonly re: RegExp;
}

/**
 * One gitignore pattern (gitignore(5)): `!` negates, a trailing `/` matches directories only, a `/`
 * elsewhere anchors it to the app root (otherwise it matches at any depth), `*` and `?` stay within a
 * path segment, `**` spans segments, `[...]` is a character class, `\` escapes.
 */
export function compilePattern(raw: string): Pattern | undefined {
  let p = raw.trim() === "" || raw.startsWith("#") ? "" : raw.replace(/(?<!\\)\s+$/, "");
  if (p === "") return undefined;
  const negate = p.startsWith("!");
  if (negate) p = p.slice(1);
  const dirOnly = p.endsWith("/");
  if (dirOnly) p = p.replace(/\/+$/, "");
  if (p === "") throw new Error(`pattern ${JSON.stringify(raw)} matches nothing`);
  const anchored = p.includes("/");
  if (p.startsWith("/")) p = p.slice(1);
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === "*") {
      if (p[i + 1] === "*" && (i === 0 || p[i - 1] === "/") && (i + 2 === p.length || p[i + 2] === "/")) {
        if (i + 2 === p.length) re += ".*";
        else re += "(?:.*/)?";
        i += 2;
        continue;
      }
      while (p[i + 1] === "*") i++;
      re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < p.length) re += escapeRegex(p[++i]!);
    else if (c === "[") {
      const end = p.indexOf("]", i + 2);
      if (end === -1) re += "\\[";
      else {
        let body = p.slice(i + 1, end);
        if (body.startsWith("!")) body = `^${body.slice(1)}`;
        re += `[${body.replaceAll("\\", "\\\\")}]`;
        i = end;
      }
    } else re += escapeRegex(c);
  }
  try {
    return { negate, dirOnly, re: new RegExp(`^${anchored ? "" : "(?:.*/)?"}${re}$`) };
  } catch {
    throw new Error(`pattern ${JSON.stringify(raw)} is not a valid glob`);
  }
}

function escapeRegex(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

/** gitignore semantics: the last pattern that matches decides, `!` patterns un-match. */
export function globMatcher(patterns: readonly string[]): (rel: string, isDir: boolean) => boolean {
  const compiled = patterns.map(compilePattern).filter((p): p is Pattern => p !== undefined);
  return (rel, isDir) => {
    let matched = false;
    for (const p of compiled) {
      if (p.dirOnly && !isDir) continue;
      if (p.re.test(rel)) matched = !p.negate;
    }
    return matched;
  };
}

/**
 * Applies `include` or `exclude` to the app directory in place, before detection: with exclude, every
 * matching file or directory (and all it holds) is removed; with include, only matching files and the
 * contents of matching directories stay, and directories left empty go. `project.toml` itself stays
 * (it was read already; keeping it lets buildpacks that read their own tables see it). Returns the
 * relative paths removed.
 */
export async function pruneAppDir(
  appDir: string,
  rules: { include?: readonly string[] | undefined; exclude?: readonly string[] | undefined },
): Promise<string[]> {
  const removed: string[] = [];
  if (!rules.include && !rules.exclude) return removed;
  const exclude = rules.exclude ? globMatcher(rules.exclude) : undefined;
  const include = rules.include ? globMatcher(rules.include) : undefined;
  const walk = async (rel: string): Promise<boolean> => {
    // Returns whether the directory `rel` still holds something.
    let kept = false;
    for (const entry of await readdir(path.join(appDir, rel), { withFileTypes: true })) {
      const child = rel === "" ? entry.name : `${rel}/${entry.name}`;
      const abs = path.join(appDir, child);
      const isDir = entry.isDirectory() && !(await lstat(abs)).isSymbolicLink();
      if (child === PROJECT_FILE) {
        kept = true;
        continue;
      }
      if (exclude) {
        if (exclude(child, isDir)) {
          await rm(abs, { recursive: true, force: true });
          removed.push(child);
        } else {
          kept = true;
          if (isDir) await walk(child);
        }
        continue;
      }
      if (include!(child, isDir)) kept = true;
      else if (isDir && (await walk(child))) kept = true;
      else {
        await rm(abs, { recursive: true, force: true });
        removed.push(child);
      }
    }
    return kept;
  };
  await walk("");
  return removed;
}

// --- applying it to a build -----------------------------------------------------------------------

/** What the lifecycle needs to know of the buildpacks it has, to resolve a project's group. */
export interface AvailableBuildpack {
  readonly id: string;
  readonly version: string;
}

/**
 * The detect order a project asks for: `[[io.buildpacks.group]]` replaces `order` with one group of
 * exactly those buildpacks (none optional, as `pack` does); pre/post groups are added around every
 * group of `order` (or of the explicit group). Undefined when the project changes nothing. Unknown
 * ids and versions are InputErrors listing what is available.
 */
export function projectOrder(
  project: ProjectDescriptor,
  available: ReadonlyMap<string, AvailableBuildpack>,
  order: readonly { readonly group: readonly { readonly id: string; readonly optional: boolean }[] }[],
  source = PROJECT_FILE,
): { group: { id: string; optional: boolean }[] }[] | undefined {
  if (!project.group && project.pre.length === 0 && project.post.length === 0) return undefined;
  const entry = (e: ProjectGroupEntry) => {
    const bp = available.get(e.id);
    const ids = [...available.keys()].sort().join(", ");
    if (!bp)
      throw new InputError(
        `${source}: [[io.buildpacks.group]] id ${e.id} is not a buildpack this platform has; available: ${ids}`,
      );
    if (e.version !== undefined && e.version !== bp.version)
      throw new InputError(
        `${source}: [[io.buildpacks.group]] ${e.id} version ${e.version} is not available (this platform has ${bp.version})`,
      );
    return { id: e.id, optional: false };
  };
  const pre = project.pre.map(entry);
  const post = project.post.map(entry);
  const groups = project.group ? [{ group: project.group.map(entry) }] : order;
  return groups.map((g) => ({ group: [...pre, ...g.group, ...post] }));
}

/**
 * Writes an inline buildpack (`[io.buildpacks.group.script]`) as a buildpack directory, the way `pack`
 * does: `buildpack.toml` with the script's api, `bin/detect` that always passes, and `bin/build` =
 * `#!<shell>` followed by the script.
 */
export async function writeInlineBuildpack(
  dir: string,
  e: Extract<ProjectGroupEntry, { kind: "inline" }>,
): Promise<void> {
  await mkdir(path.join(dir, "bin"), { recursive: true });
  await writeFile(
    path.join(dir, "buildpack.toml"),
    stringify({
      api: e.api,
      buildpack: { id: e.id, version: e.version, name: `${e.id} (inline, project.toml)` },
    }),
  );
  await writeFile(path.join(dir, "bin", "detect"), `#!${e.shell}\nexit 0\n`, { mode: 0o755 });
  await writeFile(path.join(dir, "bin", "build"), `#!${e.shell}\n\n${e.inline}\n`, { mode: 0o755 });
  await chmod(path.join(dir, "bin", "detect"), 0o755);
  await chmod(path.join(dir, "bin", "build"), 0o755);
}
