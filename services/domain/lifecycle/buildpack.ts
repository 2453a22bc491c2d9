import { parse } from "smol-toml";
import { InputError, errorMessage } from "../../platform/errors.js";

/** What Slipway reads from a buildpack's `buildpack.toml` (spec `buildpack.md` §buildpack.toml). */
export interface BuildpackDescriptor {
  readonly api: string;
  readonly id: string;
  readonly version: string;
  readonly name: string | undefined;
  readonly homepage: string | undefined;
  /** When set, user env from `<platform>/env` is not exported to the buildpack's detect and build. */
  readonly clearEnv: boolean;
  /**
   * Build-time variables the buildpack reads (`[[metadata.configurations]]`, the Paketo convention):
   * the platform warns about a `BP_*` variable no buildpack of the group declares.
   */
  readonly configurations: readonly BuildpackConfiguration[];
}

/** One `[[metadata.configurations]]` entry of a `buildpack.toml`. */
export interface BuildpackConfiguration {
  readonly name: string;
  readonly default: string | undefined;
  readonly description: string | undefined;
  readonly build: boolean;
}

/** Buildpack APIs this platform implements the detect/build contracts of. */
export const SUPPORTED_APIS = ["0.9", "0.10", "0.11", "0.12"];
const RESERVED_IDS = ["app", "config", "generated", "sbom"];

export function parseBuildpackToml(text: string, source: string): BuildpackDescriptor {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (error) {
    throw new InputError(`${source}: not valid TOML: ${errorMessage(error)}`, { cause: error });
  }
  const bp = asTable(doc.buildpack);
  const api = doc.api;
  const id = bp?.id;
  const version = bp?.version;
  if (typeof api !== "string" || !SUPPORTED_APIS.includes(api)) {
    throw new InputError(
      `${source}: api must be one of ${SUPPORTED_APIS.join(", ")} (got ${JSON.stringify(api)})`,
    );
  }
  if (typeof id !== "string" || !/^[A-Za-z0-9./-]+$/.test(id) || RESERVED_IDS.includes(id)) {
    throw new InputError(`${source}: [buildpack] id must match [A-Za-z0-9./-]+ and not be a reserved name`);
  }
  if (typeof version !== "string" || version === "") {
    throw new InputError(`${source}: [buildpack] version is required`);
  }
  return {
    api,
    id,
    version,
    name: typeof bp?.name === "string" ? bp.name : undefined,
    homepage: typeof bp?.homepage === "string" ? bp.homepage : undefined,
    clearEnv: bp?.["clear-env"] === true,
    configurations: parseConfigurations(asTable(doc.metadata)?.configurations, source),
  };
}

function parseConfigurations(value: unknown, source: string): BuildpackConfiguration[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || asTables(value).length !== value.length)
    throw new InputError(`${source}: [[metadata.configurations]] must be an array of tables`);
  return asTables(value).map((c, i) => {
    if (typeof c.name !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(c.name))
      throw new InputError(
        `${source}: [[metadata.configurations]] entry ${i + 1} needs a name that is an environment variable name`,
      );
    return {
      name: c.name,
      default: typeof c.default === "string" ? c.default : undefined,
      description: typeof c.description === "string" ? c.description : undefined,
      build: c.build === true,
    };
  });
}

/** `/` is not allowed in a directory name, so layer directories use `_` (spec §Buildpack Layers). */
export function escapeId(id: string): string {
  return id.replaceAll("/", "_");
}

export function asTable(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

export function asTables(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value)
    ? value.map(asTable).filter((t): t is Record<string, unknown> => t !== undefined)
    : [];
}
