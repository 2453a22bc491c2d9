import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { parse } from "smol-toml";
import { errorMessage, SlipwayError } from "../../platform/errors.js";
import { asTables, parseBuildpackToml } from "./buildpack.js";
import type { OrderGroup } from "./order.js";

/** The file, beside the buildpack folders, that says which buildpacks detect and in what order. */
export const ORDER_FILE = "order.toml";

/** Slipway's buildpacks as `order.toml` arranges them, checked against the folders that hold them. */
export interface BuildpackOrder {
  /** Host folders of the buildpacks, in the order they first appear in `order.toml`. */
  readonly buildpacks: readonly string[];
  readonly order: readonly OrderGroup[];
}

/** Start cannot go on: the buildpacks and their order disagree. The message says what to change. */
export class BuildpackOrderError extends SlipwayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("internal", message, options);
  }
}

/**
 * Reads `<dir>/order.toml` (the CNB order format: `[[order]]` groups of `[[order.group]]` entries with
 * `id`, optional `version`, `optional` defaulting to false) and the buildpack folders beside it (every
 * folder with a `buildpack.toml`; `lib`, shared helpers, has none). Read once at start: a folder the
 * order does not name, or an order entry no folder provides, stops the start with a message naming it,
 * instead of a buildpack that silently never detects.
 */
export async function loadBuildpackOrder(dir: string): Promise<BuildpackOrder> {
  const shown = (name: string) => path.join(path.basename(dir), name);
  const orderFile = shown(ORDER_FILE);
  const folders = await buildpackFolders(dir, shown);

  let text: string;
  try {
    text = await readFile(path.join(dir, ORDER_FILE), "utf8");
  } catch (cause) {
    throw new BuildpackOrderError(
      `create ${orderFile}, listing the buildpacks in ${path.basename(dir)}/ in detect order ([[order]] with [[order.group]] id = "..."): ${errorMessage(cause)}`,
      { cause },
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (cause) {
    throw new BuildpackOrderError(`fix ${orderFile}: not valid TOML: ${errorMessage(cause)}`, { cause });
  }
  const groups = asTables(doc.order);
  if (groups.length === 0) {
    throw new BuildpackOrderError(`add at least one [[order]] group to ${orderFile}`);
  }

  const byId = new Map(folders.map((f) => [f.id, f]));
  const order: OrderGroup[] = groups.map((g, i) => ({
    group: asTables(g.group).map((entry) => {
      const id = entry.id;
      if (typeof id !== "string" || id === "") {
        throw new BuildpackOrderError(
          `give every [[order.group]] entry of ${orderFile} an id (group ${i + 1})`,
        );
      }
      const folder = byId.get(id);
      if (!folder) {
        throw new BuildpackOrderError(
          `remove ${id} from ${orderFile}, or add its folder: no folder under ${path.basename(dir)}/ holds a buildpack.toml with id "${id}"`,
        );
      }
      if (entry.version !== undefined && entry.version !== folder.version) {
        throw new BuildpackOrderError(
          `make the version of ${id} in ${orderFile} match ${shown(folder.name)}/buildpack.toml: the order says ${JSON.stringify(entry.version)}, the folder has "${folder.version}"`,
        );
      }
      if (entry.optional !== undefined && typeof entry.optional !== "boolean") {
        throw new BuildpackOrderError(`optional of ${id} in ${orderFile} must be true or false`);
      }
      return { id, optional: entry.optional === true };
    }),
  }));
  order.forEach((g, i) => {
    if (g.group.length === 0)
      throw new BuildpackOrderError(`add buildpacks to group ${i + 1} of ${orderFile}, or remove it`);
  });

  const named = new Set(order.flatMap((g) => g.group.map((e) => e.id)));
  const unnamed = folders.find((f) => !named.has(f.id));
  if (unnamed) {
    throw new BuildpackOrderError(
      `add ${unnamed.id} to ${orderFile} ([[order.group]] id = "${unnamed.id}"), or remove the folder ${shown(unnamed.name)}: it holds a buildpack the detect order does not name, so it would never run`,
    );
  }
  return { buildpacks: [...named].map((id) => path.join(dir, byId.get(id)!.name)), order };
}

async function buildpackFolders(dir: string, shown: (name: string) => string) {
  const entries = await readdir(dir, { withFileTypes: true });
  const folders: { name: string; id: string; version: string }[] = [];
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const file = path.join(dir, entry.name, "buildpack.toml");
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      // Not a buildpack (shared helpers), unless it has a buildpack's executables.
      const hasBin = (await readdir(path.join(dir, entry.name))).includes("bin");
      if (hasBin) {
        throw new BuildpackOrderError(
          `add ${shown(entry.name)}/buildpack.toml: the folder has bin/ like a buildpack but no descriptor, so it would never run`,
        );
      }
      continue;
    }
    let descriptor;
    try {
      descriptor = parseBuildpackToml(text, shown(path.join(entry.name, "buildpack.toml")));
    } catch (cause) {
      throw new BuildpackOrderError(`fix ${errorMessage(cause)}`, { cause });
    }
    const twin = folders.find((f) => f.id === descriptor.id);
    if (twin) {
      throw new BuildpackOrderError(
        `give ${shown(entry.name)} its own buildpack id: ${shown(twin.name)} already has id "${descriptor.id}"`,
      );
    }
    folders.push({ name: entry.name, id: descriptor.id, version: descriptor.version });
  }
  return folders;
}
