import { parse } from "smol-toml";
import { InputError, errorMessage } from "../../platform/errors.js";
import { asTable, asTables } from "./buildpack.js";

/** One group of an `order.toml`: buildpacks tried together, in this order. */
export interface OrderGroup {
  readonly group: readonly { readonly id: string; readonly optional: boolean }[];
}

export interface Require {
  readonly name: string;
  readonly metadata: Record<string, unknown>;
}

/** One alternative of a build plan: the top level, or one `[[or]]` entry. */
export interface PlanAlternative {
  readonly provides: readonly string[];
  readonly requires: readonly Require[];
}

export type DetectOutcome =
  | { readonly status: "pass"; readonly plan: readonly PlanAlternative[] }
  | { readonly status: "fail" }
  | { readonly status: "error"; readonly exitCode: number };

/** An entry of a buildpack's plan (`$CNB_BP_PLAN_PATH`): something a later or same buildpack asked for. */
export interface PlanEntry {
  readonly name: string;
  readonly metadata: Record<string, unknown>;
}

export interface ResolvedGroup {
  readonly buildpacks: readonly { readonly id: string; readonly plan: readonly PlanEntry[] }[];
}

/**
 * Parses the build plan a buildpack's detect wrote. A missing or empty file is one empty alternative:
 * the buildpack takes part without providing or requiring anything.
 */
export function parseBuildPlan(text: string, source: string): PlanAlternative[] {
  if (text.trim() === "") return [{ provides: [], requires: [] }];
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (error) {
    throw new InputError(`${source}: build plan is not valid TOML: ${errorMessage(error)}`, { cause: error });
  }
  return [alternative(doc, source), ...asTables(doc.or).map((t) => alternative(t, source))];
}

function alternative(t: Record<string, unknown>, source: string): PlanAlternative {
  const name = (e: Record<string, unknown>, what: string): string => {
    if (typeof e.name !== "string" || e.name === "")
      throw new InputError(`${source}: a [[${what}]] entry has no name`);
    return e.name;
  };
  return {
    provides: asTables(t.provides).map((e) => name(e, "provides")),
    requires: asTables(t.requires).map((e) => ({
      name: name(e, "requires"),
      metadata: asTable(e.metadata) ?? {},
    })),
  };
}

/**
 * Resolves the detect order (spec `buildpack.md` §Phase #1: Detection): groups are tried in order; in a
 * group every buildpack's detect runs, a failing non-optional buildpack fails the group, and among the
 * passing ones the first combination of plan alternatives (optional buildpacks may be dropped) in which
 * every `requires` is provided by the same or an earlier buildpack and every `provides` is required by
 * the same or a later one wins. `detect` is memoised, so a buildpack in several groups runs once.
 * Returns undefined when no group passes.
 */
export async function resolveOrder(
  order: readonly OrderGroup[],
  detect: (id: string) => Promise<DetectOutcome>,
): Promise<ResolvedGroup | undefined> {
  const seen = new Map<string, Promise<DetectOutcome>>();
  const once = (id: string): Promise<DetectOutcome> => {
    let p = seen.get(id);
    if (!p) {
      p = detect(id);
      seen.set(id, p);
    }
    return p;
  };
  for (const { group } of order) {
    const passed: { id: string; optional: boolean; plan: readonly PlanAlternative[] }[] = [];
    let groupFailed = false;
    for (const entry of group) {
      const outcome = await once(entry.id);
      if (outcome.status === "pass") passed.push({ ...entry, plan: outcome.plan });
      else if (!entry.optional) {
        groupFailed = true;
        break;
      }
    }
    if (groupFailed || passed.length === 0) continue;
    const trial = firstValidTrial(passed);
    if (trial) return { buildpacks: planEntries(trial) };
  }
  return undefined;
}

type Chosen = { id: string; alt: PlanAlternative };

/** Depth first over (alternatives of each buildpack, then "left out" for optional ones), first buildpack slowest. */
function firstValidTrial(
  passed: readonly { id: string; optional: boolean; plan: readonly PlanAlternative[] }[],
): Chosen[] | undefined {
  const walk = (i: number, chosen: Chosen[]): Chosen[] | undefined => {
    if (i === passed.length) return chosen.length > 0 && isValid(chosen) ? chosen : undefined;
    const bp = passed[i]!;
    for (const alt of bp.plan) {
      const found = walk(i + 1, [...chosen, { id: bp.id, alt }]);
      if (found) return found;
    }
    return bp.optional ? walk(i + 1, chosen) : undefined;
  };
  return walk(0, []);
}

function isValid(trial: readonly Chosen[]): boolean {
  const provided = new Set<string>();
  for (const { alt } of trial) {
    for (const p of alt.provides) provided.add(p);
    if (alt.requires.some((r) => !provided.has(r.name))) return false;
  }
  const required = new Set<string>();
  for (const { alt } of [...trial].reverse()) {
    for (const r of alt.requires) required.add(r.name);
    if (alt.provides.some((p) => !required.has(p))) return false;
  }
  return true;
}

/** Each provider of a name receives every requirement of that name made at or after it. */
function planEntries(trial: readonly Chosen[]): ResolvedGroup["buildpacks"] {
  return trial.map(({ id, alt }, i) => {
    const entries: PlanEntry[] = [];
    for (const name of new Set(alt.provides)) {
      for (const later of trial.slice(i)) {
        for (const r of later.alt.requires) if (r.name === name) entries.push({ name, metadata: r.metadata });
      }
    }
    return { id, plan: entries };
  });
}
