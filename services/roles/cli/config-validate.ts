import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  CONFIG_FILE_NAMES,
  parseComponentsConfig,
  type ComponentsConfig,
  type ConfigProblem,
} from "../../domain/config/index.js";
import { errorMessage, InputError } from "../../platform/errors.js";

export interface ValidateResult {
  readonly ok: boolean;
  /** What to print: the summary, or every problem as `file:line:col: field: message`. */
  readonly output: string;
  /** The file that was read, as named in `output`; undefined when none was found. */
  readonly file?: string | undefined;
  /** The parsed config with defaults applied, when `ok` (for `--json`). */
  readonly config?: ComponentsConfig | undefined;
  /** Every problem found, when the file was read but is invalid (for `--json`). */
  readonly problems?: readonly ConfigProblem[] | undefined;
}

/**
 * `slipway config validate [path]`: checks a components config offline, exactly as a build would. Without
 * a path it reads `slipway.yaml`, else `toolforge.yaml`, in `cwd`. Never throws for a missing or invalid
 * file: the result says so, and the caller sets the exit code from `ok`.
 */
export async function validateConfigFile(
  file?: string,
  options: { cwd?: string } = {},
): Promise<ValidateResult> {
  const cwd = options.cwd ?? process.cwd();
  const candidates = file === undefined ? [...CONFIG_FILE_NAMES] : [file];
  for (const candidate of candidates) {
    let text: string;
    try {
      text = await readFile(path.resolve(cwd, candidate), "utf8");
    } catch (error) {
      if (file === undefined && (error as NodeJS.ErrnoException).code === "ENOENT") continue;
      return { ok: false, file: candidate, output: `cannot read ${candidate}: ${errorMessage(error)}` };
    }
    try {
      const config = parseComponentsConfig(text, candidate);
      return { ok: true, file: candidate, config, output: summarize(candidate, config) };
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      const problems = error.details?.problems as ConfigProblem[] | undefined;
      return { ok: false, file: candidate, problems, output: error.message };
    }
  }
  return {
    ok: false,
    output:
      `no ${CONFIG_FILE_NAMES.join(" or ")} in ${cwd}. Without one, Slipway runs the Procfile's processes: ` +
      "web as the webservice at /, every other type as a continuous worker.",
  };
}

function summarize(file: string, config: ComponentsConfig): string {
  const components = Object.values(config.components);
  const width = Math.max(...components.map((c) => c.name.length));
  const lines = [`${file} is valid: ${components.length} component${components.length === 1 ? "" : "s"}`];
  for (const c of components) {
    const facts: string[] = [];
    if (c.run.schedule !== undefined) facts.push(`schedule ${c.run.schedule}`);
    if (c.run.publish !== undefined) facts.push(`published at ${c.run.publish}`);
    if (c.run.port !== undefined) facts.push(`port ${c.run.port}`);
    if ((c.run.replicas ?? 1) > 1) facts.push(`${c.run.replicas} replicas`);
    facts.push(
      c.build.kind === "reuse"
        ? `image of ${c.build.reuse_from}`
        : c.build.repository === undefined
          ? "built from this repository"
          : `built from ${c.build.repository}${c.build.ref === undefined ? "" : ` at ${c.build.ref}`}`,
    );
    lines.push(`  ${c.name.padEnd(width)}  ${c.component_type.padEnd(10)}  ${facts.join(", ")}`);
  }
  const { branches, tags } = config.deploy;
  lines.push(
    `deploys ${branches === undefined ? "the default branch" : branches.length ? `branches ${branches.join(", ")}` : "no branch"}` +
      `${tags.length ? ` and tags ${tags.join(", ")}` : "; tags do not deploy"}`,
  );
  return lines.join("\n");
}
