import { describe, expect, it } from "vitest";
import { effectivePolicy, limitProblems, parseQuantity, policyOf, type LimitPolicy } from "./limits.js";
import type { ToolWorkload } from "./model.js";
import { renderAll, renderNamespace, renderWorkload } from "./render.js";

const DIGEST = `registry.example/tool-lt/web@sha256:${"a".repeat(64)}`;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const OPTIONS = { domain: "toolforge.example", ingressClassName: "nginx" };
const NS = "tool-lt";

function web(extra: Partial<ToolWorkload> = {}): ToolWorkload {
  return {
    kind: "continuous-webservice",
    tool: "lt",
    component: "web",
    image: DIGEST,
    command: { process: "web" },
    releaseId: "r1",
    commit: COMMIT,
    ...extra,
  } as ToolWorkload;
}

/** The problems of a tool's components under the namespace objects Slipway renders (DEFAULT_QUOTA). */
function problems(workloads: ToolWorkload[], quota = {}): string[] {
  const objects = renderAll({ tool: "lt", quota, workloads }, OPTIONS);
  return limitProblems(NS, objects, policyOf(objects));
}

describe("parseQuantity", () => {
  it("reads the quantities Kubernetes writes", () => {
    expect(parseQuantity("2")).toBe(2);
    expect(parseQuantity("1500m")).toBe(1.5);
    expect(parseQuantity("0.5")).toBe(0.5);
    expect(parseQuantity("4Gi")).toBe(4 * 2 ** 30);
    expect(parseQuantity("1G")).toBe(1e9);
    expect(parseQuantity("1e3")).toBe(1000);
    expect(parseQuantity(3)).toBe(3);
    expect(parseQuantity("two")).toBeUndefined();
  });
});

describe("limitProblems", () => {
  it("accepts what fits the namespace Slipway renders", () => {
    expect(
      problems([web(), web({ component: "bot", kind: "continuous-worker", cpu: "2", memory: "4Gi" })]),
    ).toEqual([]);
  });

  it("refuses a CPU limit over the LimitRange's maximum, first saying what to change", () => {
    const found = problems([web({ cpu: "3" })]);
    expect(found[0]).toBe(
      "components.web.run.cpu is 3 but tool-lt allows at most 2 CPUs per container: lower run.cpu to 2 CPUs or less (LimitRange tool-limits)",
    );
    // 2 pods (one extra during a rolling update) × 3 CPUs is over the quota's 4 CPUs too.
    expect(found[1]).toMatch(
      /^the components need 6 CPUs of limits\.cpu at a rollout's peak but tool-lt's quota allows 4 CPUs: lower run\.cpu or run\.replicas/,
    );
    expect(found).toHaveLength(2);
  });

  it("refuses memory over the maximum and a CPU under the minimum", () => {
    expect(problems([web({ memory: "6Gi" })])[0]).toMatch(
      /^components\.web\.run\.memory is 6Gi but tool-lt allows at most 4Gi per container: lower run\.memory/,
    );
    expect(problems([web({ cpu: "5m" })])[0]).toMatch(
      /^components\.web\.run\.cpu asks for 5m CPU but tool-lt needs at least 10m CPU per container: raise run\.cpu/,
    );
  });

  it("refuses replicas × memory beyond the quota, counting the extra pod of a rolling update", () => {
    // 4 replicas + 1 surge pod × 2Gi = 10Gi of limits.memory; the quota allows 8Gi.
    const found = problems([web({ memory: "2Gi", replicas: 4 })]);
    expect(found).toHaveLength(1);
    expect(found[0]).toBe(
      "the components need 10Gi of limits.memory at a rollout's peak but tool-lt's quota allows 8Gi: lower run.memory or run.replicas (web: 5 pods × 2Gi; a rolling update runs one extra pod per Deployment; ResourceQuota tool-quota)",
    );
    // 3 replicas + 1 = 8Gi fits exactly.
    expect(problems([web({ memory: "2Gi", replicas: 3 })])).toEqual([]);
  });

  it("refuses a scheduled job that cannot run beside the continuous components", () => {
    const cron: ToolWorkload = {
      kind: "scheduled",
      tool: "lt",
      component: "nightly",
      image: DIGEST,
      command: { shell: "./nightly" },
      releaseId: "r1",
      commit: COMMIT,
      schedule: "@daily",
      cpu: "2",
    };
    // web alone: 3 pods × 1200m during a rollout fits 4 CPUs; 2 × 1200m beside a 2-CPU run does not.
    expect(problems([web({ cpu: "1", replicas: 2 }), cron])).toEqual([]);
    const tight = problems([web({ cpu: "1200m", replicas: 2 }), cron]);
    expect(tight).toEqual([
      "the components need 4400m CPU of limits.cpu while nightly runs but tool-lt's quota allows 4 CPUs: lower run.cpu or run.replicas (web: 2 pods × 1200m CPU, nightly: 1 pod × 2 CPUs; ResourceQuota tool-quota)",
    ]);
  });

  it("counts an operator's own LimitRange and quota beside Slipway's, which replace their live copies", () => {
    const rendered = policyOf(renderNamespace("lt"));
    const live: LimitPolicy = {
      limitRanges: [
        { name: "tool-limits", limits: [{ type: "Container", max: { cpu: "8" } }] },
        { name: "operator", limits: [{ type: "Container", max: { cpu: "500m" } }] },
      ],
      quotas: [{ name: "operator-quota", hard: { pods: "2" } }],
    };
    const policy = effectivePolicy(rendered, live);
    expect(policy.limitRanges.map((l) => l.name)).toEqual(["tool-limits", "operator"]);
    const objects = renderWorkload(web({ cpu: "1", replicas: 2 }), OPTIONS);
    expect(limitProblems(NS, objects, policy)).toEqual([
      "components.web.run.cpu is 1 but tool-lt allows at most 500m CPU per container: lower run.cpu to 500m CPU or less (LimitRange operator)",
      "the components need 3 of pods at a rollout's peak but tool-lt's quota allows 2: lower run.replicas (web: 3 pods × 1; a rolling update runs one extra pod per Deployment; ResourceQuota operator-quota)",
    ]);
  });
});
