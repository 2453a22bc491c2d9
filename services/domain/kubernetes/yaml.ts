import { stringify } from "yaml";

/**
 * Multi-document YAML of `objects`, in the order given (use `renderAll`/`sortObjects` for a stable
 * one), each document starting with `---`. Keys keep their insertion order (apiVersion, kind, metadata,
 * spec as rendered); long strings are never folded, so commands and schedules stay on one line.
 */
export function toYaml(objects: readonly object[]): string {
  return objects.map((o) => `---\n${stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })}`).join("");
}
