import { lstat, readFile } from "node:fs/promises";
import path from "node:path";
import { parse } from "smol-toml";
import { InputError, PipelineError } from "../../platform/errors.js";
import { asTable } from "./buildpack.js";
import type { StackSuite } from "./types.js";

/** Where an app asked for a Python version, and what it asked for. */
export interface PythonRequest {
  /** `BP_CPYTHON_VERSION`, `.python-version`, `runtime.txt` or `pyproject.toml requires-python`. */
  readonly source: string;
  /** As written (trimmed), for messages. */
  readonly asked: string;
  /** Whether a Python major.minor satisfies the request. */
  readonly accepts: (minor: string) => boolean;
}

/**
 * The app's explicit Python version request, by precedence: `BP_CPYTHON_VERSION` (Paketo's build
 * env var) > `.python-version` (pyenv, uv) > `runtime.txt` (`python-3.13.1`, Heroku) >
 * `requires-python` in pyproject.toml. Undefined when none is given. A malformed one is an
 * InputError naming the file: silently ignoring it would run the app on a Python it did not ask for.
 */
export function pythonRequest(
  files: {
    readonly pythonVersion?: string | undefined;
    readonly runtimeTxt?: string | undefined;
    readonly pyproject?: string | undefined;
  },
  env: Readonly<Record<string, string>>,
): PythonRequest | undefined {
  const bp = env.BP_CPYTHON_VERSION?.trim();
  if (bp) return exactRequest("BP_CPYTHON_VERSION", bp, bp.replace(/\.[*x]$/, ""));
  if (files.pythonVersion !== undefined) {
    // pyenv's format: the first line that is not a comment; `python-3.13`/`cpython-3.13` as uv writes.
    const line = files.pythonVersion
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l && !l.startsWith("#"));
    if (line) return exactRequest(".python-version", line, line.replace(/^c?python-/, ""));
  }
  if (files.runtimeTxt !== undefined) {
    const text = files.runtimeTxt.trim();
    if (text) return exactRequest("runtime.txt", text, text.replace(/^python-/, ""), "python-3.13.1");
  }
  if (files.pyproject !== undefined) return requiresPython(files.pyproject);
  return undefined;
}

function exactRequest(source: string, asked: string, version: string, example = "3.13"): PythonRequest {
  if (!/^3(\.\d+){0,2}$/.test(version))
    throw new InputError(
      `${source}: ${JSON.stringify(asked)} is not a Python version; write a version such as ${example}`,
    );
  const wanted = version.split(".").slice(0, 2).join(".");
  // A patch level is matched by its minor: Debian ships one patch release of each minor, and
  // security fixes keep its number, so `3.13.1` runs on Debian's 3.13.
  return { source, asked, accepts: (minor) => minor === wanted || minor.startsWith(`${wanted}.`) };
}

function requiresPython(text: string): PythonRequest | undefined {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch {
    // pip reports a broken pyproject.toml with its own words when it installs the project.
    return undefined;
  }
  const spec = asTable(doc.project)?.["requires-python"];
  if (typeof spec !== "string" || !spec.trim()) return undefined;
  const source = "pyproject.toml requires-python";
  const clauses = spec.split(",").map((c) => c.trim());
  const tests = clauses.map((clause) => {
    const m = /^(~=|===|==|!=|<=|>=|<|>)\s*(\d+(?:\.\d+)*)(\.\*)?$/.exec(clause);
    if (!m)
      throw new InputError(
        `${source}: ${JSON.stringify(clause)} is not a version specifier; write one such as ">=3.11"`,
      );
    return specifier(m[1]!, m[2]!, m[3] !== undefined);
  });
  return { source, asked: spec.trim(), accepts: (minor) => tests.every((t) => t(minor)) };
}

/**
 * PEP 440 on major.minor only: the stacks' Pythons are known by minor, so a clause's patch level is
 * compared as if the stack had that patch (`>=3.11.4` accepts 3.11).
 */
function specifier(op: string, version: string, wildcard: boolean): (minor: string) => boolean {
  const want = version.split(".").map(Number);
  const minorOf = (parts: number[]) => [parts[0] ?? 0, parts[1] ?? 0];
  const cmp = (minor: string) => {
    const [a, b] = minorOf(minor.split(".").map(Number));
    const [c, d] = minorOf(want);
    return a! - c! || b! - d!;
  };
  switch (op) {
    case "==":
    case "===":
      // `==3.*` matches any 3.x; `==3.13` and `==3.13.*` match 3.13.
      return wildcard && want.length === 1 ? (m) => m.split(".")[0] === String(want[0]) : (m) => cmp(m) === 0;
    case "!=":
      return wildcard && want.length === 1 ? (m) => m.split(".")[0] !== String(want[0]) : (m) => cmp(m) !== 0;
    case "~=":
      // `~=3.11` is >=3.11, ==3.*; `~=3.11.2` is >=3.11.2, ==3.11.*
      return want.length <= 2
        ? (m) => cmp(m) >= 0 && m.split(".")[0] === String(want[0])
        : (m) => cmp(m) === 0;
    case ">=":
      return (m) => cmp(m) >= 0;
    case "<=":
      return (m) => cmp(m) <= 0;
    case ">":
      // `>3.11` excludes 3.11.x too (PEP 440: post-releases aside); `>3.11.2` accepts later 3.11 patches.
      return want.length <= 2 ? (m) => cmp(m) > 0 : (m) => cmp(m) >= 0;
    default:
      // `<3.12` excludes 3.12; `<3.11.4` accepts earlier 3.11 patches.
      return want.length <= 2 ? (m) => cmp(m) < 0 : (m) => cmp(m) <= 0;
  }
}

/**
 * The suite whose Python satisfies the request, preferring the first (the default stack). Throws an
 * InputError whose first line says what to change and which versions exist.
 */
export function chooseSuite<S extends StackSuite>(request: PythonRequest, suites: readonly S[]): S {
  const found = suites.find((s) => request.accepts(s.python));
  if (found) return found;
  const versions = suites.map((s) => s.python);
  const list =
    versions.length > 1 ? `${versions.slice(0, -1).join(", ")} or ${versions.at(-1)!}` : (versions[0] ?? "");
  const change =
    request.source === "pyproject.toml requires-python"
      ? `change requires-python in pyproject.toml so that it allows Python ${list}`
      : `change ${request.source} to ${list}`;
  throw new InputError(
    `${request.source} asks for Python ${request.asked}, which Slipway does not have: ${change}.\n` +
      `Available: ${suites.map((s) => `Python ${s.python} (Debian ${s.suite})`).join(", ")}; ` +
      `no other Python can be installed here.`,
  );
}

/** Reads the request files from the app on the host; symlinks are ignored, as pip would see a file it cannot trust. */
export async function readPythonRequest(
  appDir: string,
  env: Readonly<Record<string, string>>,
): Promise<PythonRequest | undefined> {
  const read = async (name: string) => {
    const file = path.join(appDir, name);
    const info = await lstat(file).catch(() => undefined);
    // Read on the host: a symlink could point at a host file.
    if (!info?.isFile() || info.size > 64 * 1024) return undefined;
    return readFile(file, "utf8");
  };
  return pythonRequest(
    {
      pythonVersion: await read(".python-version"),
      runtimeTxt: await read("runtime.txt"),
      pyproject: await read("pyproject.toml"),
    },
    env,
  );
}

/**
 * The stack suite the app's Python request asks for, or undefined when it asks for none. A request no
 * suite satisfies fails the build in detect, saying what to change: before any buildpack runs, so a
 * backend that picks its build image ahead of the build (pipelines/) fails as the lifecycle does.
 */
export async function requestedSuite<S extends StackSuite>(
  appDir: string,
  env: Readonly<Record<string, string>>,
  suites: readonly S[],
  onLog: (line: string) => void,
): Promise<{ suite: S; source: string } | undefined> {
  try {
    const request = await readPythonRequest(appDir, env);
    if (!request) return undefined;
    return { suite: chooseSuite(request, suites), source: request.source };
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    onLog(`error: ${error.message}`);
    throw new PipelineError("detect_failed", error.message, {
      cause: error,
      details: { phase: "detect", buildpack: null, exit_code: null, log_tail: error.message.split("\n") },
    });
  }
}
