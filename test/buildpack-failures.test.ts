import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failureCause } from "../services/domain/lifecycle/failure-cause.js";
import type { PipelineError } from "../services/platform/errors.js";
import { type Builder, startBuilder } from "./helpers/buildpack-build.js";

// What a user sees of a failed build (PRODUCT §4 "every failure explains itself"): the lifecycle's
// PipelineError, which BuildPipeline copies into the build record (reason + log_tail) and the CLI prints.
const LONG = 600_000;
let b: Builder;

beforeAll(async () => {
  b = await startBuilder("bpfail");
}, 600_000);

afterAll(async () => {
  await b?.close();
});

function tail(error: PipelineError): string {
  return (error.details?.log_tail as string[]).join("\n");
}

/** The fields every failed build phase reports, whichever buildpack failed. */
function expectBuildFailure(error: PipelineError, buildpack: string): void {
  expect(error.code).toBe("build_failed");
  expect(error.details).toMatchObject({ phase: "build", buildpack, exit_code: 1 });
  const lines = error.details?.log_tail as string[];
  // The one-line reason ends with the line that says why (failure-cause.ts, unit-tested on its own).
  expect(error.message).toBe(
    `build failed in phase build: buildpack ${buildpack} exited with code 1: ${failureCause(lines)}`,
  );
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.length).toBeLessThanOrEqual(30);
}

describe("a failed build names the buildpack, the phase, the exit code and the last log lines", () => {
  it(
    "nodejs: invalid package.json, and an engines.node no release satisfies",
    async () => {
      const bad = await b.fixture("", { "package.json": '{ "name": "x",\n  "scripts": { ' }, "node-badjson");
      const badError = await b.buildError("node-badjson", bad);
      expectBuildFailure(badError, "slipway/nodejs");
      expect(tail(badError)).toMatch(/package\.json is not valid JSON: .* at line 2, column \d+/);

      const pkg = { name: "x", version: "1.0.0", engines: { node: ">=999" } };
      const future = await b.fixture("", { "package.json": JSON.stringify(pkg) }, "node-engines");
      const futureError = await b.buildError("node-engines", future);
      expectBuildFailure(futureError, "slipway/nodejs");
      expect(futureError.message).toContain(
        'exited with code 1: error: no Node.js release matches package.json engines.node ">=999"; change it',
      );
      expect(tail(futureError)).toMatch(
        /no Node\.js release matches package\.json engines\.node ">=999"; .* \(newest available: \d+\.\d+\.\d+,/,
      );
    },
    LONG,
  );

  it(
    "nodejs: a failing npm run build names the exception, not a stack frame",
    async () => {
      const dir = await b.fixture(
        "",
        {
          "package.json": JSON.stringify({
            name: "shop",
            version: "1.0.0",
            scripts: { build: "node build.js", start: "node build.js" },
          }),
          "build.js": 'const config = require("./config.json");\nconsole.log(config);\n',
        },
        "node-build-error",
      );
      const error = await b.buildError("node-build-error", dir);
      expectBuildFailure(error, "slipway/nodejs");
      expect(error.message).toContain("exited with code 1: Error: Cannot find module './config.json'");
      expect(tail(error)).toMatch(/^\s+at /m);
    },
    LONG,
  );

  it(
    "python: pip with an unreachable index names the connection failure, not 'No matching distribution'",
    async () => {
      const dir = await b.fixture(
        "",
        {
          "requirements.txt": "--index-url https://pypi.invalid/simple\nflask==3.0.0\n",
          "app.py": "print(1)\n",
        },
        "py-no-index",
      );
      const error = await b.buildError("py-no-index", dir);
      expectBuildFailure(error, "slipway/python");
      expect(error.message).toMatch(
        /exited with code 1: .*(Could not resolve host|Failed to establish a new connection|name resolution|Name or service not known)/,
      );
      expect(error.message).not.toContain("No matching distribution");
    },
    LONG,
  );

  it(
    "python: .python-version asking for a version the stack does not have names the one it has",
    async () => {
      const dir = await b.fixture("", { ".python-version": "3.8\n", "app.py": "print(1)\n" }, "py-version");
      const error = await b.buildError("py-version", dir);
      expectBuildFailure(error, "slipway/python");
      expect(error.message).toContain("exited with code 1: error: .python-version asks for Python 3.8");
      const text = tail(error);
      expect(text).toMatch(
        /\.python-version asks for Python 3\.8, but this stack's Python is 3\.11\.\d+: change \.python-version to 3\.11 or 3\.13, which Slipway has/,
      );

      // The version the stack has, as major.minor, builds.
      const version = "3.11";
      const ok = await b.fixture("", { ".python-version": `${version}\n`, "app.py": "print(1)\n" }, "py-ok");
      const { result } = await b.build("py-ok", ok);
      expect(result.group.map((g) => g.id)).toEqual(["slipway/python"]);
    },
    LONG,
  );

  it(
    "php: invalid composer.json",
    async () => {
      const dir = await b.fixture("", { "composer.json": '{ "require": { "php": "^8.1" } ' }, "php-bad");
      const error = await b.buildError("php-bad", dir);
      expectBuildFailure(error, "slipway/php");
      expect(tail(error)).toMatch(/composer\.json is not valid JSON: .* line 1/);
    },
    LONG,
  );

  it(
    "go: a compile error shows the compiler's file:line message",
    async () => {
      const dir = await b.fixture(
        "",
        {
          "go.mod": "module example.com/broken\n\ngo 1.19\n",
          "main.go": "package main\n\nfunc main() {\n\tundefinedThing()\n}\n",
        },
        "go-broken",
      );
      const error = await b.buildError("go-broken", dir);
      expectBuildFailure(error, "slipway/go");
      // The compiler's message, not the buildpack's "go build … failed (above)" pointing at it.
      expect(error.message).toMatch(/exited with code 1: (\.\/)?main\.go:4:2: undefined: undefinedThing$/);
      const text = tail(error);
      expect(text).toMatch(/main\.go:4:2: undefined: undefinedThing/);
      expect(text).toContain("Fix the errors and push again.");
    },
    LONG,
  );

  it(
    "no buildpack detects: says what each looked for, and where",
    async () => {
      const dir = await b.fixture("", { "notes.txt": "nothing to run\n" }, "nothing");
      const error = await b.buildError("nothing", dir);
      expect(error.code).toBe("detect_failed");
      expect(error.details).toMatchObject({ phase: "detect", buildpack: null });
      expect(error.message).toContain("no buildpack group passed detection");
      for (const line of [
        "slipway/apt: fail",
        "slipway/nodejs: fail — looks for package.json at the repository root: not found",
        "slipway/python: fail — looks for requirements.txt, pyproject.toml, setup.py, .python-version, app.py or main.py at the repository root: none found",
        "slipway/go: fail — looks for go.mod",
        "slipway/static: fail — looks for index.html or public/index.html at the repository root: not found",
      ])
        expect(error.message).toContain(line);
      const tried = error.details?.tried as { id: string; result: string }[];
      expect(tried.map((t) => t.id)).toEqual([
        "slipway/apt",
        "slipway/nodejs",
        "slipway/python",
        "slipway/php",
        "slipway/go",
        "slipway/static",
        "slipway/procfile",
      ]);
      expect(tried.every((t) => t.result === "fail")).toBe(true);
    },
    LONG,
  );
});
