import { describe, expect, it } from "vitest";
import { renderTable, replaceTable, row, TABLE_END, TABLE_START } from "../../bench/table.js";

describe("the README's bench table from bench/results/latest.json", () => {
  const results = {
    machine: { cores: 2, node: "v22.1.0", at: "2026-12-07T03:00:00.000Z", load: [0.42, 0.3, 0.2] },
    figures: [
      {
        name: "webhook: accepted per second",
        value: 1794.4,
        unit: "/s",
        target: ">= 3000/s",
        met: false,
        note: "16 connections",
      },
      {
        name: "push to live: code-only change, p50 of 5",
        value: 3.123,
        unit: "s",
        target: "<= 5 s",
        met: true,
      },
      {
        name: "cold build vs buildah: time",
        value: 1.37,
        unit: "x",
        target: "<= 1.0x",
        met: false,
        baseline: 7.3,
        note: "baseline: buildah bud's seconds",
      },
      { name: "push to live: first push (cold)", value: 11.9, unit: "s", target: "(info)", met: null },
      {
        name: "cold build, skipped",
        value: null,
        unit: "x",
        target: "<= 1.0x",
        met: null,
        note: "over budget",
      },
    ],
    builders: {
      machine: { cores: 2, at: "2026-12-07T04:00:00.000Z" },
      figures: [{ name: "two builders vs one", value: 0.55, unit: "x", target: "~ 0.5x", met: true }],
    },
  };

  it("has a row per figure, main run first, with value, baseline, note and whether the target is met", () => {
    const table = renderTable(results);
    expect(table).toContain("2026-12-07, 2 cores, Node v22.1.0, load average 0.42 0.3 0.2 at the start");
    expect(table).toContain(
      "| webhook: accepted per second | 1,794/s; 16 connections | ≥ 3000/s — not met |",
    );
    expect(table).toContain("| push to live: code-only change, p50 of 5 | 3.12 s | ≤ 5 s — met |");
    expect(table).toContain(
      "| cold build vs buildah: time | 1.37× (baseline 7.3); baseline: buildah bud's seconds | ≤ 1.0x — not met |",
    );
    expect(table).toContain("| push to live: first push (cold) | 11.9 s | (info) |");
    expect(table).toContain("| cold build, skipped | not measured; over budget | (info) |");
    // Sections written by their own runs follow, named, with their own date.
    expect(table).toContain("| builders: two builders vs one | 0.55× | ~ 0.5x — met |");
    expect(table).toContain("`npm run bench -- builders`, 2026-12-07, 2 cores");
    const rows = table
      .split("\n")
      .filter((l) => l.startsWith("| ") && !l.startsWith("| figure") && !l.startsWith("| ---"));
    expect(rows.map((r) => r.split(" | ")[0])).toEqual([
      "| webhook: accepted per second",
      "| push to live: code-only change, p50 of 5",
      "| cold build vs buildah: time",
      "| push to live: first push (cold)",
      "| cold build, skipped",
      "| builders: two builders vs one",
    ]);
  });

  it("escapes a pipe in a note so the row keeps its three columns", () => {
    expect(row({ name: "a", value: 1, unit: "s", target: "<= 2 s", met: true, note: "x | y" })).toBe(
      "| a | 1 s; x \\| y | ≤ 2 s — met |",
    );
  });

  it("replaces only what lies between the markers, and again the same way", () => {
    const readme = `# Slipway\n\nbefore\n\n${TABLE_START}\n\nold table\n\n${TABLE_END}\n\nafter\n`;
    const once = replaceTable(readme, "new table");
    expect(once).toBe(`# Slipway\n\nbefore\n\n${TABLE_START}\n\nnew table\n\n${TABLE_END}\n\nafter\n`);
    expect(replaceTable(once, "new table")).toBe(once);
  });

  it("says where the markers go when the README has none", () => {
    expect(() => replaceTable("# Slipway\n", "t")).toThrow(
      /README.md has no bench table markers: put <!-- bench-table:start/,
    );
  });
});
