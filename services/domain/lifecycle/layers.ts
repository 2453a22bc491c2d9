import { parse, stringify } from "smol-toml";
import { InputError, errorMessage } from "../../platform/errors.js";
import { asTable } from "./buildpack.js";

/** `<layer>.toml` (spec `buildpack.md` §Layer Types). Unset types are false. */
export interface LayerToml {
  readonly types: { readonly launch: boolean; readonly build: boolean; readonly cache: boolean };
  readonly metadata: Record<string, unknown>;
}

/** Names a buildpack may not give a layer, because the lifecycle writes files of that name. */
export const RESERVED_LAYER_NAMES = ["build", "launch", "store"];

export function parseLayerToml(text: string, source: string): LayerToml {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (error) {
    throw new InputError(`${source}: not valid TOML: ${errorMessage(error)}`, { cause: error });
  }
  const types = asTable(doc.types) ?? {};
  return {
    types: { launch: types.launch === true, build: types.build === true, cache: types.cache === true },
    metadata: asTable(doc.metadata) ?? {},
  };
}

/**
 * What a restored `<layer>.toml` contains: the metadata only. `[types]` is stripped so a buildpack
 * must opt in again; a layer it does not touch is then ignored (spec §Layer Types, restoration).
 */
export function restoredLayerToml(layer: LayerToml): string {
  return Object.keys(layer.metadata).length === 0 ? "" : stringify({ metadata: layer.metadata });
}

/** A layer directory entry is a layer if it has a `.toml`, a valid name and is not one of the reserved ones. */
export function layerNames(entries: readonly string[]): string[] {
  return entries
    .filter((e) => e.endsWith(".toml"))
    .map((e) => e.slice(0, -".toml".length))
    .filter((n) => n !== "" && !RESERVED_LAYER_NAMES.includes(n) && !n.includes("/") && !n.startsWith("."))
    .sort();
}
