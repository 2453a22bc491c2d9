/**
 * `npm run bench:table`: writes the README's bench table from bench/results/latest.json, between the
 * marker comments, so the figures there are the ones a run measured and never typed by hand. The main
 * run's figures come first, then the sections written by their own runs (`-- builders`, `-- scale`).
 */
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Figure } from "./scale.js";

export const TABLE_START = "<!-- bench-table:start (npm run bench:table writes this table) -->";
export const TABLE_END = "<!-- bench-table:end -->";

interface Machine {
  cores?: number;
  node?: string;
  at?: string;
  load?: number[];
}

/** A section written by its own run (`scale`, `builders`): its figures and when they were measured. */
interface Section {
  machine?: Machine;
  note?: string;
  figures?: Figure[];
}

/** bench/results/latest.json as the bench writes it. */
export interface BenchResults {
  machine?: Machine;
  figures?: Figure[];
  [section: string]: unknown;
}

/** 1794.2 → "1,794", 3.123 → "3.12", 0.5 → "0.5". */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  const digits = Math.abs(n) >= 100 ? 0 : 2;
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function withUnit(n: number, unit: string): string {
  if (unit === "" || unit === "bool") return formatNumber(n);
  if (unit === "x" || unit.startsWith("/")) return `${formatNumber(n)}${unit === "x" ? "×" : unit}`;
  return `${formatNumber(n)} ${unit}`;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\s*\n\s*/g, " ");
}

/** One row: the figure, what was measured (with the baseline and the note), the target and whether met. */
export function row(f: Figure): string {
  let measured = f.value === null ? "not measured" : withUnit(f.value, f.unit);
  if (f.baseline !== undefined)
    measured += ` (baseline ${withUnit(f.baseline, f.unit === "x" ? "" : f.unit)})`;
  if (f.note) measured += `; ${f.note}`;
  const info = f.met === null || /^\(?info\)?$/.test(f.target);
  const target = info
    ? "(info)"
    : `${f.target.replace(/^<=/, "≤").replace(/^>=/, "≥")} — ${f.met ? "met" : "not met"}`;
  return `| ${cell(f.name)} | ${cell(measured)} | ${cell(target)} |`;
}

function when(m: Machine | undefined): string {
  if (!m) return "at an unrecorded time";
  const parts = [m.at ? m.at.slice(0, 10) : "undated", `${m.cores ?? "?"} cores`];
  if (m.node) parts.push(`Node ${m.node}`);
  if (m.load) parts.push(`load average ${m.load.map(formatNumber).join(" ")} at the start`);
  return parts.join(", ");
}

/** The markdown between the markers: a line saying when, then one table of every section's figures. */
export function renderTable(results: BenchResults): string {
  const lines = [
    `Measured by \`npm run bench\` ${when(results.machine)}; regenerated from \`bench/results/latest.json\`.`,
  ];
  const sections = Object.entries(results).filter(
    (e): e is [string, Section] =>
      e[0] !== "machine" && e[0] !== "figures" && typeof e[1] === "object" && e[1] !== null,
  );
  for (const [name, section] of sections)
    lines.push(
      `The \`${name}\` rows: \`npm run bench -- ${name}\`, ${when(section.machine)}${section.note ? ` (${section.note})` : ""}.`,
    );
  lines.push("", "| figure | measured | target |", "| --- | --- | --- |");
  for (const f of results.figures ?? []) lines.push(row(f));
  for (const [name, section] of sections)
    for (const f of section.figures ?? []) lines.push(row({ ...f, name: `${name}: ${f.name}` }));
  return lines.join("\n");
}

/** `text` with what lies between the markers replaced by `table`; an error when a marker is missing. */
export function replaceTable(text: string, table: string, file = "README.md"): string {
  const start = text.indexOf(TABLE_START);
  const end = text.indexOf(TABLE_END);
  if (start < 0 || end < start)
    throw new Error(
      `${file} has no bench table markers: put ${TABLE_START} and ${TABLE_END} where the table goes`,
    );
  return `${text.slice(0, start + TABLE_START.length)}\n\n${table}\n\n${text.slice(end)}`;
}

async function main(): Promise<void> {
  let root = path.dirname(fileURLToPath(import.meta.url));
  while (path.basename(root) === "bench" || path.basename(root) === "dist") root = path.dirname(root);
  const resultsFile = path.join(root, "bench", "results", "latest.json");
  const results = JSON.parse(
    await readFile(resultsFile, "utf8").catch((e: unknown) => {
      throw new Error(`no ${resultsFile}: run npm run bench first`, { cause: e });
    }),
  ) as BenchResults;
  const readme = path.join(root, "README.md");
  const before = await readFile(readme, "utf8");
  // Formatted as `prettier --check` (npm run check) wants the README: aligned table columns.
  const prettier = await import("prettier");
  const options = (await prettier.resolveConfig(readme)) ?? {};
  const after = await prettier.format(replaceTable(before, renderTable(results)), {
    ...options,
    filepath: readme,
  });
  await writeFile(readme, after);
  process.stdout.write(
    after === before ? "README.md's bench table is up to date\n" : "wrote README.md's bench table\n",
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench:table: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
