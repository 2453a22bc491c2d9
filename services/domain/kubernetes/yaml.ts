import { stringify } from "yaml";

/**
 * Multi-document YAML of `objects`, in the order given (use `renderAll`/`sortObjects` for a stable
 * one), each document starting with `---`. Keys keep their insertion order (apiVersion, kind, metadata,
 * spec as rendered); long strings are never folded, so commands and schedules stay on one line.
 */
export function toYaml(objects: readonly object[]): string {
  return objects.map((o) => `---\n${document(o)}`).join("");
}

function document(o: object): string {
  return stringify(o, { lineWidth: 0, aliasDuplicateObjects: false });
}

interface Reviewed {
  kind?: string;
  metadata?: { name?: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** Why an object of a review is not a document of the applyable YAML; undefined if it is one. */
function leftOut(o: Reviewed): string | undefined {
  const name = o.metadata?.name ?? "?";
  if (o.kind === "Secret") {
    const keys = Object.keys({ ...o.data, ...o.stringData }).sort();
    // Its values are redacted in a review: applied, `***` is not base64 and would replace the real ones.
    return `# Secret ${name}: left out, its values are not shown (keys: ${keys.join(", ") || "none"}); Slipway applies it on deploy`;
  }
  if (o.kind === "Job") {
    // Slipway never applies a one-off component: a Job runs as soon as it is applied.
    return `# Job ${name}: left out, a one-off component runs only when started (applying it would run it)`;
  }
  return undefined;
}

/**
 * The YAML of a review (`slipway render`) that `kubectl diff -f -` and `kubectl apply --dry-run=server
 * -f -` accept as it is: Secrets (values redacted) and one-off Jobs become a comment line saying they
 * were left out and why, in the place their document would have been.
 */
export function toApplyableYaml(objects: readonly object[]): string {
  let out = "";
  let notes: string[] = [];
  for (const o of objects) {
    const why = leftOut(o);
    if (why) {
      notes.push(why);
      continue;
    }
    out += `---\n${notes.map((n) => `${n}\n`).join("")}${document(o)}`;
    notes = [];
  }
  return out + notes.map((n) => `${n}\n`).join("");
}
