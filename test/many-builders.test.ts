import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildsDoneBy, burst, startFleet, type Fleet } from "../bench/builders.js";
import { TEST_STACK_HOME } from "./helpers/stack.js";

/**
 * Two builders share a burst (issue 17, item 6): real `slipway server` processes — api and deployer on
 * one SLIPWAY_HOME, two builders each on its own — with one redis-server and an external docker-registry.
 * Six tools push twice each (the second push once the first build runs, so it waits rather than
 * superseding). Every build must succeed and run once, both builders must take work, and no tool may
 * have all its builds done before another tool's first build starts.
 */
const TOOLS = 6;
const PER_TOOL = 2;
const PREFIX = "fleet";
const names = Array.from({ length: TOOLS }, (_, i) => `${PREFIX}-${i + 1}`);

let fleet: Fleet | undefined;

beforeAll(async () => {
  fleet = await startFleet({ builders: 2, concurrency: 2, stackHome: TEST_STACK_HOME });
}, 900_000);

afterAll(async () => {
  // Also the tools' webservices and networks (of the fleet's homes only).
  await fleet?.stop();
}, 180_000);

describe("two builder processes on their own homes", () => {
  it("share a burst: each build runs once, on one builder, both builders work, and tools take turns", async () => {
    const result = await burst(fleet!, { tools: TOOLS, perTool: PER_TOOL, prefix: PREFIX, untilEnded: true });
    const builds = result.builds;
    expect(builds).toHaveLength(TOOLS * PER_TOOL);

    // Every build succeeded: built, pushed to the external registry and deployed.
    for (const b of builds) expect(b.record?.status, `${b.id}: ${b.record?.reason}`).toBe("success");

    // Once: each build's log fetched its source once and never restarted, and exactly one builder's
    // log says it built it.
    const builderIds = fleet!.builders.map((p) => p.builderId);
    expect(new Set(builderIds).size).toBe(2);
    const doneBy = fleet!.builders.map((p) => buildsDoneBy(p));
    for (const b of builds) {
      const res = await fetch(`${fleet!.apiUrl}/api/v1/builds/${b.id}/logs`, {
        headers: { authorization: `Bearer ${fleet!.adminToken}` },
      });
      const { lines } = (await res.json()) as { lines: string[] };
      expect(
        lines.filter((l) => l.startsWith("===> FETCHING")),
        `${b.id} fetched once`,
      ).toHaveLength(1);
      expect(lines.join("\n")).not.toContain("RESTARTING");
      const runs = doneBy.map((ids) => ids.filter((id) => id === b.id).length);
      expect(
        runs.reduce((a, n) => a + n, 0),
        `${b.id} built by exactly one builder`,
      ).toBe(1);
      // The record names the builder whose log has it.
      expect(b.record?.builder).toBe(builderIds[runs.indexOf(1)]);
    }

    // Both builders took work.
    for (const ids of doneBy) expect(ids.length).toBeGreaterThan(0);

    // Fairness across the processes: every tool's first build starts before any tool has all its
    // builds done.
    const lastFirstStart = Math.max(...builds.filter((b) => b.n === 1).map((b) => b.startedAt!));
    for (const tool of names) {
      const done = Math.max(...builds.filter((b) => b.tool === tool).map((b) => b.builtAt!));
      expect(done, `${tool}'s builds all done before another tool's first started`).toBeGreaterThan(
        lastFirstStart,
      );
    }

    // The images are in the external registry, under each tool's repository.
    const repos = new Set(builds.map((b) => b.record?.image?.split("/")[1]));
    expect([...repos].sort()).toEqual(names.map((n) => `tool-${n}`).sort());
    expect(builds.every((b) => b.record?.image?.startsWith(new URL(fleet!.registryUrl).host))).toBe(true);
    console.info(
      `many builders: ${builds.length} builds in ${(result.totalMs / 1000).toFixed(1)} s; ` +
        doneBy.map((ids, i) => `builder ${i + 1}: ${ids.length}`).join(", "),
    );
  }, 1_500_000);
});
