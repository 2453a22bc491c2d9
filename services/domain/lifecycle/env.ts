/**
 * Environment variable modification rules (spec `buildpack.md` §Environment): layers change the build
 * and launch environment through directories of files, one file per variable and action. The same
 * operations are applied in TypeScript for the build and rendered as POSIX sh for launch, so both
 * sides agree.
 */
export type EnvAction = "override" | "append" | "prepend" | "default";

export interface EnvOp {
  readonly name: string;
  readonly action: EnvAction;
  readonly value: string;
  /** Between the old and the new value for append/prepend; empty when the layer gave no `.delim`. */
  readonly delim: string;
}

export interface EnvFile {
  /** File name inside the env directory, e.g. `PATH.prepend`. */
  readonly file: string;
  readonly content: string;
}

const ACTIONS: Record<string, EnvAction> = {
  "": "override",
  override: "override",
  append: "append",
  prepend: "prepend",
  default: "default",
};

/** Variables a shell can export; others are skipped rather than breaking the launch script. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Turns the files of one env directory into operations, in file name order. The name is everything
 * before the first `.`; contents are taken literally (no trimming, no shell evaluation).
 */
export function envOpsFromFiles(files: readonly EnvFile[]): EnvOp[] {
  const delims = new Map<string, string>();
  for (const f of files) {
    const [name, suffix] = splitName(f.file);
    if (suffix === "delim") delims.set(name, f.content);
  }
  const ops: EnvOp[] = [];
  for (const f of [...files].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))) {
    const [name, suffix] = splitName(f.file);
    const action = ACTIONS[suffix];
    if (!action || !ENV_NAME.test(name)) continue;
    ops.push({ name, action, value: f.content, delim: delims.get(name) ?? "" });
  }
  return ops;
}

function splitName(file: string): [string, string] {
  const dot = file.indexOf(".");
  return dot < 0 ? [file, ""] : [file.slice(0, dot), file.slice(dot + 1)];
}

/** The well-known layer subdirectories, and which variable each one prepends to. */
export function layerPathOps(
  layerPath: string,
  present: ReadonlySet<string>,
  phase: "build" | "launch",
): EnvOp[] {
  const table: [string, string[]][] =
    phase === "build"
      ? [
          ["bin", ["PATH"]],
          ["lib", ["LD_LIBRARY_PATH", "LIBRARY_PATH"]],
          ["include", ["CPATH"]],
          ["pkgconfig", ["PKG_CONFIG_PATH"]],
        ]
      : [
          ["bin", ["PATH"]],
          ["lib", ["LD_LIBRARY_PATH"]],
        ];
  const ops: EnvOp[] = [];
  for (const [dir, vars] of table) {
    if (!present.has(dir)) continue;
    for (const name of vars) ops.push({ name, action: "prepend", value: `${layerPath}/${dir}`, delim: ":" });
  }
  return ops;
}

/** Applies operations to a concrete environment (the build side). */
export function applyEnvOps(
  env: Readonly<Record<string, string>>,
  ops: readonly EnvOp[],
): Record<string, string> {
  const out: Record<string, string> = { ...env };
  for (const op of ops) {
    const current = out[op.name];
    switch (op.action) {
      case "override":
        out[op.name] = op.value;
        break;
      case "default":
        if (current === undefined || current === "") out[op.name] = op.value;
        break;
      case "append":
        out[op.name] = current ? current + op.delim + op.value : op.value;
        break;
      case "prepend":
        out[op.name] = current ? op.value + op.delim + current : op.value;
        break;
    }
  }
  return out;
}

/** Single-quotes a string for POSIX sh: the only character needing care inside '' is ' itself. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * Renders operations as POSIX sh, applied at launch on top of whatever environment the container was
 * started with (so a user's runtime variables compose with the layers' ones the same way as at build).
 */
export function envOpsToShell(ops: readonly EnvOp[]): string {
  return ops
    .map((op) => {
      const n = op.name;
      const v = shellQuote(op.value);
      switch (op.action) {
        case "override":
          return `export ${n}=${v}`;
        case "default":
          return `if [ -z "\${${n}:-}" ]; then export ${n}=${v}; fi`;
        case "append":
          return `if [ -n "\${${n}:-}" ]; then export ${n}="$${n}"${shellQuote(op.delim)}${v}; else export ${n}=${v}; fi`;
        case "prepend":
          return `if [ -n "\${${n}:-}" ]; then export ${n}=${v}${shellQuote(op.delim)}"$${n}"; else export ${n}=${v}; fi`;
      }
      return "";
    })
    .map((line) => `${line}\n`)
    .join("");
}
