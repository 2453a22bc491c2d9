import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { parseComponentsConfig, type ConfigProblem } from "./parse.js";

/** A realistic Toolforge config in the style of cluebotng's: tag refs, reuse_from, schedules, no component_type. */
const TOOLFORGE_YAML = `# yaml-language-server: $schema=https://gitlab.wikimedia.org/repos/cloud/toolforge/components-api/-/raw/main/openapi/tool-config-schema.json
config_version: v1beta1
components:
  # Web interface
  reviewer:
    build:
      repository: https://github.com/example/reviewer.git
      ref: refs/tags/v0.18.16
      use_latest_versions: true
    run:
      command: web
      port: 8000
      replicas: 2
      health_check_http: /internal/health/
  celery-worker:
    build:
      reuse_from: reviewer
    run:
      command: run-celery
      replicas: 2
  redis:
    build:
      repository: https://github.com/example/external-redis.git
      ref: refs/tags/v1.0.3
      use_latest_versions: true
    run:
      command: redis-server
      port: 6379
      mount: all
  core:
    component_type: continuous
    build:
      repository: https://github.com/example/external-core.git
      ref: v0.0.5
    run:
      command: ./core -l -m live_run
      port: 3565
      memory: 1Gi
      cpu: '1'
  bot:
    build:
      repository: https://github.com/example/bot.git
      ref: refs/tags/v1.5.5
      use_deprecated_versions: false
    run:
      command: run-bot
      memory: 2Gi
      cpu: 3
      health_check_script: health-check
  export-statistics:
    build:
      reuse_from: reviewer
    run:
      command: ./manage.py export_statistics
      schedule: 13 9 * * *
  update-edit-classifications:
    component_type: scheduled
    build:
      reuse_from: reviewer
    run:
      command: ./manage.py update_edit_classification
      schedule: 30 */2 * * *
      retry: 2
      timeout: 3600
      emails: onfailure
  backup-database:
    build:
      repository: https://github.com/example/external-utilities.git
      ref: refs/tags/v1.0.1
      use_latest_versions: true
    run:
      command: bash -c 'mysqldump -h $TOOL_DB_HOST $TOOL_DB_SCHEMA | gzip -9 > /data/project/x/backups/$(date +"%Y%m%dT%H%M%S").sql.gz'
      schedule: '45 */2 * * *'
      mount: all
      filelog: true
      filelog_stdout: logs/backup.out
      filelog_stderr: logs/backup.err
  prune-backups:
    build:
      reuse_from: backup-database
    run:
      command: bash -c 'find /data/project/x/backups -mtime +7 -delete'
      schedule: '@daily'
      mount: all
`;

function problems(text: string, file = "slipway.yaml"): ConfigProblem[] {
  try {
    parseComponentsConfig(text, file);
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return (error as InputError).details?.problems as ConfigProblem[];
  }
  throw new Error("expected the config to be rejected");
}

function message(text: string, file = "slipway.yaml"): string {
  try {
    parseComponentsConfig(text, file);
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return (error as InputError).message;
  }
  throw new Error("expected the config to be rejected");
}

/** A one-component config with the given lines under `run:` (each indented 6 spaces), plus extra YAML. */
function withRun(runLines: string[], { type, build }: { type?: string; build?: string[] } = {}): string {
  return [
    "components:",
    "  web:",
    ...(type ? [`    component_type: ${type}`] : []),
    ...(build ? ["    build:", ...build.map((l) => `      ${l}`)] : []),
    "    run:",
    ...runLines.map((l) => `      ${l}`),
    "",
  ].join("\n");
}

describe("a Toolforge config", () => {
  it("is accepted unchanged, with types inferred and defaults applied", () => {
    const config = parseComponentsConfig(TOOLFORGE_YAML, "toolforge.yaml");
    expect(Object.keys(config.components)).toEqual([
      "reviewer",
      "celery-worker",
      "redis",
      "core",
      "bot",
      "export-statistics",
      "update-edit-classifications",
      "backup-database",
      "prune-backups",
    ]);
    const c = config.components;
    expect(c.reviewer).toMatchObject({
      component_type: "continuous",
      build: {
        kind: "source",
        repository: "https://github.com/example/reviewer.git",
        ref: "refs/tags/v0.18.16",
      },
      run: {
        command: "web",
        port: 8000,
        replicas: 2,
        health_check_http: "/internal/health/",
        cpu: "100m",
        memory: "512Mi",
      },
    });
    expect(c["celery-worker"]?.build).toEqual({ kind: "reuse", reuse_from: "reviewer" });
    expect(c.core?.run).toMatchObject({ cpu: "1", memory: "1Gi" });
    expect(c.bot?.run.cpu).toBe("3");
    expect(c.core?.run.cpu_set).toBe(true);
    expect(c["export-statistics"]).toMatchObject({
      component_type: "scheduled",
      run: { schedule: "13 9 * * *", retry: 0, replicas: undefined, emails: "none", mount: "none" },
    });
    expect(c["update-edit-classifications"]?.run).toMatchObject({
      retry: 2,
      timeout: 3600,
      emails: "onfailure",
    });
    expect(c["prune-backups"]).toMatchObject({
      component_type: "scheduled",
      build: { kind: "reuse", reuse_from: "backup-database" },
      run: { schedule: "@daily", mount: "all" },
    });
    expect(config.deploy).toEqual({ branches: undefined, tags: [] });
  });

  it("applies the documented defaults to a minimal config", () => {
    const config = parseComponentsConfig(
      "components:\n  web:\n    run:\n      command: web\n",
      "slipway.yaml",
    );
    expect(config).toEqual({
      config_version: "v1beta1",
      source_url: undefined,
      deploy: { branches: undefined, tags: [] },
      components: {
        web: {
          name: "web",
          component_type: "continuous",
          build: {
            kind: "source",
            repository: undefined,
            ref: undefined,
            use_latest_versions: false,
            use_deprecated_versions: false,
          },
          run: {
            command: "web",
            cpu: "100m",
            cpu_set: false,
            memory: "512Mi",
            emails: "none",
            filelog: false,
            filelog_stdout: undefined,
            filelog_stderr: undefined,
            mount: "none",
            port: undefined,
            port_protocol: "tcp",
            publish: undefined,
            replicas: 1,
            schedule: undefined,
            retry: undefined,
            timeout: undefined,
            health_check_http: undefined,
            health_check_script: undefined,
          },
        },
      },
    });
  });

  it("accepts Slipway's additions: one-off components, publish and the deploy policy", () => {
    const config = parseComponentsConfig(
      [
        "components:",
        "  web:",
        "    run: { command: web, port: 8000, publish: true }",
        "  migrate:",
        "    component_type: one-off",
        "    run: { command: ./manage.py migrate, retry: 1, timeout: 600 }",
        "deploy:",
        "  branches: [release/*]",
        "  tags: ['v*']",
        "",
      ].join("\n"),
      "slipway.yaml",
    );
    expect(config.components.web?.run.publish).toBe("/");
    expect(config.components.migrate).toMatchObject({
      component_type: "one-off",
      run: { retry: 1, timeout: 600, replicas: undefined },
    });
    expect(config.deploy).toEqual({ branches: ["release/*"], tags: ["v*"] });
  });

  it("tells an omitted branch list (the default branch) from an empty one (no branch)", () => {
    const parse = (deploy: string) =>
      parseComponentsConfig(`components:\n  web:\n    run: {command: web}\n${deploy}\n`, "slipway.yaml")
        .deploy;
    expect(parse("deploy: { branches: [release/*] }")).toEqual({ branches: ["release/*"], tags: [] });
    expect(parse("deploy: { branches: [], tags: [v*] }")).toEqual({ branches: [], tags: ["v*"] });
    expect(parse("deploy: { tags: [v*] }")).toEqual({ branches: undefined, tags: ["v*"] });
  });
});

describe("each rule names file, line, column and field", () => {
  const cases: [string, string, string][] = [
    [
      "port must be a number",
      withRun(["command: web", "port: eighty"]),
      'slipway.yaml:5:7: components.web.run.port: expected a number from 1 to 65535, got "eighty"',
    ],
    [
      "port range",
      withRun(["command: web", "port: 70000"]),
      "slipway.yaml:5:7: components.web.run.port: expected a number from 1 to 65535, got 70000",
    ],
    [
      "command is required",
      withRun(["port: 8000"]),
      "slipway.yaml:3:5: components.web.run.command: this field is required",
    ],
    [
      "health checks are mutually exclusive",
      withRun(["command: web", "port: 8000", "health_check_http: /healthz", "health_check_script: ./check"]),
      "slipway.yaml:7:7: components.web.run.health_check_script: health_check_http and health_check_script are mutually exclusive; keep one",
    ],
    [
      "http health check needs a port",
      withRun(["command: web", "health_check_http: /healthz"]),
      "slipway.yaml:5:7: components.web.run.health_check_http: health_check_http needs a tcp port: set run.port to the port the process listens on",
    ],
    [
      "publish needs a port",
      withRun(["command: web", "publish: /"]),
      "slipway.yaml:5:7: components.web.run.publish: publish needs a tcp port: set run.port to the port the process listens on",
    ],
    [
      "publish needs a tcp port",
      withRun(["command: web", "port: 53", "port_protocol: udp", "publish: /"]),
      "slipway.yaml:7:7: components.web.run.publish: publish needs a tcp port, but run.port_protocol is udp",
    ],
    [
      "schedule only for scheduled",
      withRun(["command: x", "schedule: '@daily'"], { type: "continuous" }),
      "slipway.yaml:6:7: components.web.run.schedule: schedule is only for scheduled components; this one is continuous (set component_type: scheduled)",
    ],
    [
      "scheduled needs a schedule",
      withRun(["command: x"], { type: "scheduled" }),
      "slipway.yaml:4:5: components.web.run.schedule: scheduled components need run.schedule, e.g. '13 2 * * *' or @daily",
    ],
    [
      "cron needs 5 fields",
      withRun(["command: x", "schedule: '13 2 * *'"]),
      "slipway.yaml:5:7: components.web.run.schedule: expected a cron schedule of 5 fields",
    ],
    [
      "cron field ranges",
      withRun(["command: x", "schedule: '13 24 * * *'"]),
      'slipway.yaml:5:7: components.web.run.schedule: cron hour field "24" is not valid',
    ],
    [
      "cron macros",
      withRun(["command: x", "schedule: '@fortnightly'"]),
      'slipway.yaml:5:7: components.web.run.schedule: unknown schedule macro "@fortnightly"',
    ],
    [
      "replicas only for continuous",
      withRun(["command: x", "schedule: '@daily'", "replicas: 2"]),
      "slipway.yaml:6:7: components.web.run.replicas: replicas is only for continuous components; this one is scheduled (inferred from run.schedule)",
    ],
    [
      "port only for continuous",
      withRun(["command: x", "port: 8000"], { type: "one-off" }),
      "slipway.yaml:6:7: components.web.run.port: port is only for continuous components; this one is one-off",
    ],
    [
      "publish only for continuous",
      withRun(["command: x", "schedule: '@hourly'", "publish: /"], { type: "scheduled" }),
      "slipway.yaml:7:7: components.web.run.publish: publish is only for continuous components; this one is scheduled",
    ],
    [
      "retry only for jobs",
      withRun(["command: x", "retry: 1"]),
      "slipway.yaml:5:7: components.web.run.retry: retry is only for scheduled and one-off components; this one is continuous (the default without run.schedule)",
    ],
    [
      "retry range",
      withRun(["command: x", "schedule: '@daily'", "retry: 6"]),
      "slipway.yaml:6:7: components.web.run.retry: expected a number from 0 to 5",
    ],
    [
      "replicas cap",
      withRun(["command: x", "replicas: 9"]),
      "slipway.yaml:5:7: components.web.run.replicas: expected a whole number from 1 to 8, got 9",
    ],
    [
      "cpu format",
      withRun(["command: x", "cpu: 500x"]),
      'slipway.yaml:5:7: components.web.run.cpu: expected a CPU quantity such as "500m" or "1", got "500x"',
    ],
    [
      "memory format",
      withRun(["command: x", "memory: 256MB"]),
      'slipway.yaml:5:7: components.web.run.memory: expected a memory quantity such as 256Mi or 1Gi, got "256MB"',
    ],
    [
      "memory needs a unit",
      withRun(["command: x", "memory: 512"]),
      "slipway.yaml:5:7: components.web.run.memory: expected a memory quantity such as 256Mi or 1Gi, got 512",
    ],
    [
      "emails values, with a suggestion",
      withRun(["command: x", "schedule: '@daily'", "emails: onfail"]),
      'slipway.yaml:6:7: components.web.run.emails: expected one of none, all, onfinish, onfailure, got "onfail"; did you mean "onfailure"?',
    ],
    [
      "component_type values",
      withRun(["command: x"], { type: "cron" }),
      'slipway.yaml:3:5: components.web.component_type: expected one of continuous, scheduled, one-off, got "cron"',
    ],
    [
      "component names are RFC 1123 labels",
      "components:\n  Web_Server:\n    run: {command: web}\n",
      "slipway.yaml:2:3: components.Web_Server: component names are RFC 1123 labels",
    ],
    [
      "component names have at most 52 characters",
      `components:\n  ${"a".repeat(53)}:\n    run: {command: web}\n`,
      `slipway.yaml:2:3: components.${"a".repeat(53)}: component names have at most 52 characters`,
    ],
    [
      "reuse_from must name a component",
      withRun(["command: x"], { build: ["reuse_from: web"] }),
      'slipway.yaml:4:7: components.web.build.reuse_from: component "web" cannot reuse its own image',
    ],
    [
      "reuse_from cannot be combined with a repository",
      "components:\n  a:\n    run: {command: x}\n  b:\n    build:\n      reuse_from: a\n      repository: https://example.org/b.git\n    run: {command: y}\n",
      "slipway.yaml:7:7: components.b.build.repository: build.repository cannot be combined with build.reuse_from",
    ],
    [
      "ref needs a repository",
      withRun(["command: x"], { build: ["ref: main"] }),
      "slipway.yaml:4:7: components.web.build.ref: build.ref needs build.repository",
    ],
    [
      "repository is a URL",
      withRun(["command: x"], { build: ["repository: git@github.com:x/y.git"] }),
      "slipway.yaml:4:7: components.web.build.repository: expected an http(s):// or git:// URL of a public git repository",
    ],
    [
      "at least one component",
      "components: {}\n",
      "slipway.yaml:1:1: components: expected at least one component",
    ],
    [
      "components is required",
      "config_version: v1beta1\n",
      "slipway.yaml:1:1: components: this field is required",
    ],
    [
      "config_version is v1beta1",
      "config_version: v2\ncomponents:\n  web:\n    run: {command: web}\n",
      'slipway.yaml:1:1: config_version: expected v1beta1, got "v2"',
    ],
    [
      "deploy globs are a list",
      "components:\n  web:\n    run: {command: web}\ndeploy:\n  tags: v*\n",
      "slipway.yaml:5:3: deploy.tags: expected a list of glob patterns, e.g. [main] or ['v*'], got \"v*\"",
    ],
  ];
  it.each(cases)("%s", (_name, text, expected) => {
    const lines = message(text).split("\n");
    expect(
      lines.some((l) => l.startsWith(expected)),
      `${expected}\nnot in:\n${lines.join("\n")}`,
    ).toBe(true);
  });

  it("reuse_from names an existing component, with a suggestion", () => {
    const text =
      "components:\n  web:\n    run: {command: web}\n  job:\n    build: {reuse_from: wbe}\n    run: {command: x, schedule: '@daily'}\n";
    expect(message(text)).toBe(
      'slipway.yaml:5:13: components.job.build.reuse_from: no component named "wbe"; did you mean "web"?',
    );
  });

  it("reuse_from must point at a component built from source, not a chain", () => {
    const text = [
      "components:",
      "  a:",
      "    run: {command: x}",
      "  b:",
      "    build: {reuse_from: a}",
      "    run: {command: y}",
      "  c:",
      "    build:",
      "      reuse_from: b",
      "    run: {command: z}",
      "",
    ].join("\n");
    expect(message(text)).toBe(
      'slipway.yaml:9:7: components.c.build.reuse_from: "b" itself reuses "a"; reuse_from must name a component built from source (no chains)',
    );
  });
});

describe("problem reports", () => {
  it("lists every problem at once, in file order, with a header", () => {
    const text = [
      "components:", // 1
      "  web:", // 2
      "    run:", // 3
      "      command: web", // 4
      "      port: eighty", // 5
      "      health_check_http: /h", // 6
      "      health_check_script: ./h", // 7
      "  job:", // 8
      "    build:", // 9
      "      reuse_from: nothing-here", // 10
      "    run:", // 11
      "      command: x", // 12
      "      schedule: '99 * * * *'", // 13
      "",
    ].join("\n");
    expect(message(text)).toBe(
      [
        "slipway.yaml has 4 problems:",
        'slipway.yaml:5:7: components.web.run.port: expected a number from 1 to 65535, got "eighty"',
        "slipway.yaml:7:7: components.web.run.health_check_script: health_check_http and health_check_script are mutually exclusive; keep one",
        'slipway.yaml:10:7: components.job.build.reuse_from: no component named "nothing-here"',
        'slipway.yaml:13:7: components.job.run.schedule: cron minute field "99" is not valid (expected *, numbers 0-59, ranges a-b, lists a,b and steps */n)',
      ].join("\n"),
    );
    expect(problems(text).map((p) => [p.line, p.column, p.path])).toEqual([
      [5, 7, "components.web.run.port"],
      [7, 7, "components.web.run.health_check_script"],
      [10, 7, "components.job.build.reuse_from"],
      [13, 7, "components.job.run.schedule"],
    ]);
  });

  it("names an unknown key, where it is, and the key it probably meant", () => {
    const text = [
      "config-version: v1beta1", // 1
      "components:", // 2
      "  web:", // 3
      "    component-type: continuous", // 4
      "    biuld: {reuse_from: x}", // 5
      "    run:", // 6
      "      command: web", // 7
      "      prot: 8000", // 8
      "      mem: 1Gi", // 9
      "      frobnicate: yes", // 10
      "deploy:", // 11
      "  branch: [main]", // 12
      "",
    ].join("\n");
    const lines = message(text).split("\n").slice(1);
    expect(lines).toEqual([
      'slipway.yaml:1:1: config-version: unknown key "config-version"; did you mean "config_version"?',
      'slipway.yaml:4:5: components.web.component-type: unknown key "component-type"; did you mean "component_type"?',
      'slipway.yaml:5:5: components.web.biuld: unknown key "biuld"; did you mean "build"?',
      'slipway.yaml:8:7: components.web.run.prot: unknown key "prot"; did you mean "port"?',
      'slipway.yaml:9:7: components.web.run.mem: unknown key "mem"; did you mean "memory"?',
      expect.stringMatching(
        /^slipway\.yaml:10:7: components\.web\.run\.frobnicate: unknown key "frobnicate"; expected one of command, cpu, memory, .*health_check_script$/,
      ),
      'slipway.yaml:12:3: deploy.branch: unknown key "branch"; did you mean "branches"?',
    ]);
  });

  it("says where a key at the wrong level belongs", () => {
    const text = "components:\n  job:\n    schedule: '@daily'\n    run: {command: x}\n";
    expect(message(text)).toBe(
      'slipway.yaml:3:5: components.job.schedule: unknown key "schedule"; it belongs under run:',
    );
  });

  it("locates YAML syntax errors", () => {
    const text = "components:\n  web:\n    run:\n      command: web\n     port: 8000\n";
    const [p, ...rest] = problems(text);
    expect(rest).toEqual([]);
    expect(p).toMatchObject({ file: "slipway.yaml", line: 5, path: "" });
    expect(p?.column).toBeGreaterThan(0);
    expect(message(text)).toMatch(/^slipway\.yaml:5:\d+: YAML syntax error: /);
  });

  it("rejects duplicate keys with their location", () => {
    const text = "components:\n  web:\n    run: {command: web}\n  web:\n    run: {command: web}\n";
    expect(message(text)).toMatch(/^slipway\.yaml:4:3: YAML syntax error: Map keys must be unique/);
  });

  it("explains an empty file and a file that is not a map", () => {
    expect(message("", "toolforge.yaml")).toMatch(
      /^toolforge\.yaml:1:1: the file is empty; it needs a components: map/,
    );
    expect(message("# only a comment\n")).toMatch(/^slipway\.yaml:1:1: the file is empty/);
    expect(message("\n- web\n- worker\n")).toBe(
      "slipway.yaml:2:1: expected a map with a components: key, got a list",
    );
    expect(message("just words\n")).toBe(
      'slipway.yaml:1:1: expected a map with a components: key, got "just words"',
    );
  });

  it("rejects a component that is not a map", () => {
    expect(message("components:\n  web: web\n")).toBe(
      'slipway.yaml:2:3: components.web: expected a map, got "web"',
    );
  });

  it("carries the problems as structured details with code invalid_input", () => {
    try {
      parseComponentsConfig(withRun(["command: web", "port: eighty"]), "slipway.yaml");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).code).toBe("invalid_input");
      expect((error as InputError).details).toEqual({
        file: "slipway.yaml",
        problems: [
          {
            file: "slipway.yaml",
            line: 5,
            column: 7,
            path: "components.web.run.port",
            message: 'expected a number from 1 to 65535, got "eighty"',
          },
        ],
      });
    }
  });
});

describe("YAML as Toolforge reads it (PyYAML, YAML 1.1)", () => {
  it("reads yes as a boolean but y as a string, as PyYAML does", () => {
    const config = parseComponentsConfig(
      [
        "components:",
        "  web:",
        "    build:",
        "      repository: https://example.org/web.git",
        "      use_latest_versions: yes",
        "    run: {command: web, port: 8000, publish: yes}",
        "  y:",
        "    run: {command: y}",
        "",
      ].join("\n"),
      "toolforge.yaml",
    ).components;
    expect(config.web?.build).toMatchObject({ use_latest_versions: true });
    expect(config.web?.run.publish).toBe("/");
    expect(config.y?.run.command).toBe("y");
  });

  it("merges shared run settings with <<", () => {
    const text = [
      "components:",
      "  a:",
      "    run: &defaults",
      "      command: ./job a",
      "      schedule: '@daily'",
      "      mount: all",
      "  b:",
      "    run:",
      "      <<: *defaults",
      "      command: ./job b",
      "",
    ].join("\n");
    const config = parseComponentsConfig(text, "slipway.yaml");
    expect(config.components.b?.run).toMatchObject({ command: "./job b", schedule: "@daily", mount: "all" });
    expect(config.components.b?.component_type).toBe("scheduled");
  });

  it("caps the message at 50 problems but keeps all of them in details", () => {
    const text = [
      "components:",
      ...Array.from({ length: 60 }, (_, i) => `  c${i}: {run: {command: x, port: -1}}`),
      "",
    ].join("\n");
    const m = message(text);
    expect(m.split("\n")[0]).toBe("slipway.yaml has 60 problems:");
    expect(m.split("\n")).toHaveLength(52);
    expect(m).toMatch(/\.\.\. and 10 more$/);
    expect(problems(text)).toHaveLength(60);
  });
});
