import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../services/platform/process.js";

/**
 * The alert rules docs/operating.md gives operators, checked by Prometheus' own promtool: they parse,
 * and each fires on the series it is about and stays quiet otherwise (`promtool test rules`).
 * promtool comes with Debian's `prometheus` package; without it the test is skipped and says so.
 */
const repoRoot = path.resolve(import.meta.dirname, "..");
const PROMTOOL = "/usr/bin/promtool";
const hasPromtool = await access(PROMTOOL).then(
  () => true,
  () => false,
);
const why = hasPromtool ? "" : " (skipped: promtool not installed; apt-get install prometheus)";

/** The one ```yaml block of docs/operating.md that is a rules file. */
async function rulesFromDocs(): Promise<string> {
  const doc = await readFile(path.join(repoRoot, "docs/operating.md"), "utf8");
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const rules = blocks.filter((b) => b.startsWith("groups:"));
  expect(rules).toHaveLength(1);
  return rules[0]!;
}

const TESTS = `rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  # Builds fail one a minute and none succeed: SlipwayBuildsFailing.
  - interval: 1m
    input_series:
      - series: 'slipway_builds_total{outcome="failure"}'
        values: '0+1x60'
      - series: 'slipway_builds_total{outcome="success"}'
        values: '0+0x60'
    alert_rule_test:
      - eval_time: 5m
        alertname: SlipwayBuildsFailing
        exp_alerts: []
      - eval_time: 40m
        alertname: SlipwayBuildsFailing
        exp_alerts:
          - exp_labels: { severity: warning }
            exp_annotations:
              summary: "Most Slipway builds are failing"
              description: "100% of the builds that ended in 30 minutes failed; look at \`slipway build logs\` of a few, and at the builder's log."
  # One failure in four: quiet.
  - interval: 1m
    input_series:
      - series: 'slipway_builds_total{outcome="failure"}'
        values: '0+1x60'
      - series: 'slipway_builds_total{outcome="success"}'
        values: '0+3x60'
    alert_rule_test:
      - eval_time: 50m
        alertname: SlipwayBuildsFailing
        exp_alerts: []
  # Two builds wait and none starts: stuck. Then builds start: quiet.
  - interval: 1m
    input_series:
      - series: 'slipway_queue_jobs{queue="build", state="waiting"}'
        values: '2x60'
      - series: 'slipway_build_queue_wait_seconds_count'
        values: '5x30 5+1x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: SlipwayBuildQueueStuck
        exp_alerts:
          - exp_labels: { severity: critical }
            exp_annotations:
              summary: "Slipway's build queue is stuck"
              description: "2 builds wait and none started in 15 minutes; is a builder running (\`slipway server --role builder\`) and does it reach Redis?"
      - eval_time: 50m
        alertname: SlipwayBuildQueueStuck
        exp_alerts: []
  # A new installation whose first builds never start (no histogram series at all): stuck too.
  - interval: 1m
    input_series:
      - series: 'slipway_queue_jobs{queue="build", state="waiting"}'
        values: '1x30'
    alert_rule_test:
      - eval_time: 25m
        alertname: SlipwayBuildQueueStuck
        exp_alerts:
          - exp_labels: { severity: critical }
            exp_annotations:
              summary: "Slipway's build queue is stuck"
              description: "1 builds wait and none started in 15 minutes; is a builder running (\`slipway server --role builder\`) and does it reach Redis?"
  # One tool's job fails every ten minutes; another job failed once.
  - interval: 1m
    input_series:
      - series: 'slipway_job_runs_total{tool="t1", job="nightly", outcome="failed"}'
        values: '0+0.1x60'
      - series: 'slipway_job_runs_total{tool="t2", job="sync", outcome="failed"}'
        values: '0 1x60'
      - series: 'slipway_job_runs_total{tool="t2", job="sync", outcome="succeeded"}'
        values: '0+1x60'
    alert_rule_test:
      - eval_time: 59m
        alertname: SlipwayJobFailingRepeatedly
        exp_alerts:
          - exp_labels: { severity: info, tool: t1, job: nightly }
            exp_annotations:
              summary: "Job nightly of tool t1 keeps failing"
              description: "5.9 failed runs in the last hour; the tool's maintainers are mailed too (\`slipway jobs logs nightly\`)."
`;

describe("the alert rules in docs/operating.md" + why, () => {
  let dir: string | undefined;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(!hasPromtool)("parse and fire on what they are about (promtool check/test rules)", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "slipway-rules-"));
    await writeFile(path.join(dir, "rules.yml"), await rulesFromDocs());
    await writeFile(path.join(dir, "tests.yml"), TESTS);
    const check = await run(PROMTOOL, ["check", "rules", "rules.yml"], { cwd: dir, allowFailure: true });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain("SUCCESS: 3 rules found");
    const test = await run(PROMTOOL, ["test", "rules", "tests.yml"], { cwd: dir, allowFailure: true });
    expect(test.code, test.stdout + test.stderr).toBe(0);
  });
});
