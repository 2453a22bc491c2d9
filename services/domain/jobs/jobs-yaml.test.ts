import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import type { JobDefinition } from "./job.js";
import { dumpJobsYaml, jobTypeOf, parseJobsYaml, toJobsYamlItem } from "./jobs-yaml.js";
import { backoffSeconds } from "./runner.js";

/** A jobs.yaml as Toolforge users write it (keys from the jobs framework CLI's loader). */
const JOBS_YAML = `
# https://wikitech.wikimedia.org/wiki/Help:Toolforge/Jobs_framework
- name: update-db
  command: ./update.sh --all
  image: python3.11
  schedule: "@daily"
  emails: onfailure
  retry: 2
- name: bot
  command: bot
  image: python3.11
  continuous: true
  mem: 1Gi
- name: migrate
  command: ./manage.py migrate
  image: python3.11
  timeout: 600
  no-filelog: true
`;

function definition(input: ReturnType<typeof parseJobsYaml>[number]): JobDefinition {
  return {
    tool: "t",
    name: input.name,
    type: jobTypeOf(input),
    command: input.command,
    image: "registry/tool-t/web@sha256:abc",
    image_name: input.image,
    release_id: "r1",
    schedule: input.schedule,
    cron: undefined,
    retry: input.retry,
    timeout_s: input.timeout,
    memory_mb: input.mem === "1Gi" ? 1024 : undefined,
    source: "api",
    revision: 1,
    extra: input.extra,
    created_at: "",
    updated_at: "",
  };
}

describe("jobs.yaml", () => {
  it("reads Toolforge's format: type from schedule/continuous, Toolforge-only keys kept", () => {
    const jobs = parseJobsYaml(JOBS_YAML);
    expect(jobs.map((j) => [j.name, jobTypeOf(j)])).toEqual([
      ["update-db", "scheduled"],
      ["bot", "continuous"],
      ["migrate", "one-off"],
    ]);
    expect(jobs[0]).toMatchObject({ schedule: "@daily", retry: 2, extra: { emails: "onfailure" } });
    expect(jobs[1]).toMatchObject({ mem: "1Gi", image: "python3.11" });
    expect(jobs[2]).toMatchObject({ timeout: 600, extra: { "no-filelog": true } });
  });

  it("round-trips: dump of the loaded jobs loads to the same jobs", () => {
    const first = parseJobsYaml(JOBS_YAML);
    const dumped = dumpJobsYaml(first.map(definition));
    expect(parseJobsYaml(dumped)).toEqual(first.map((j) => (j.name === "bot" ? { ...j, mem: "1024Mi" } : j)));
    expect(toJobsYamlItem(definition(first[1]!))).toEqual({
      name: "bot",
      command: "bot",
      image: "python3.11",
      continuous: true,
      mem: "1024Mi",
    });
  });

  it.each([
    ["name: x\ncommand: y\n", /must be a list of jobs/],
    ["- name: Bad_Name\n  command: y\n", /invalid job name "Bad_Name"/],
    ["- name: a\n", /job 1 \(a\): command/],
    ["- name: a\n  command: y\n  sched: '@daily'\n", /job 1 \(a\): sched: unknown key/],
    ["- name: a\n  command: y\n  retry: 9\n", /job 1 \(a\): retry/],
    ["- name: a\n  command: y\n  schedule: '@daily'\n  continuous: true\n", /mutually exclusive/],
    ["- name: a\n  command: y\n- name: a\n  command: z\n", /job 2 \(a\): the name a is used twice/],
    ["- name: a\n  command: [unclosed\n", /not valid YAML/],
  ])("rejects %j with a message naming the job and key", (text, message) => {
    expect(() => parseJobsYaml(text)).toThrow(InputError);
    expect(() => parseJobsYaml(text)).toThrow(message);
  });

  it("accepts an empty file as no jobs", () => {
    expect(parseJobsYaml("")).toEqual([]);
    expect(parseJobsYaml("[]")).toEqual([]);
  });
});

describe("restart backoff", () => {
  it("doubles from 1 s and stops at the cap", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 40].map((n) => backoffSeconds(n, 60))).toEqual([
      1, 2, 4, 8, 16, 32, 60, 60, 60,
    ]);
  });
});
