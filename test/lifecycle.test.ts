import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PodmanBuildSandbox } from "../services/adapters/podman/sandbox.js";
import { runLifecycle } from "../services/domain/lifecycle/lifecycle.js";
import type { LifecycleResult, Stack } from "../services/domain/lifecycle/types.js";
import { PipelineError } from "../services/platform/errors.js";
import { run } from "../services/platform/process.js";
import { type Builder, config, startBuilder } from "./helpers/buildpack-build.js";

// The stack (cached in TEST_STACK_HOME) takes about two minutes to build the first time.
const buildpacks = ["nodejs", "python", "procfile"].map((b) => path.join(config.repoRoot, "buildpacks", b));

let builder: Builder;
let stack: Stack;
let root: string;

beforeAll(async () => {
  builder = await startBuilder("lc");
  ({ stack, root } = builder);
}, 600_000);

afterAll(async () => {
  await builder?.close();
});

async function app(name: string, files: Record<string, string>): Promise<string> {
  const dir = path.join(root, name, "app");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) await writeFile(path.join(dir, file), content);
  return dir;
}

async function build(
  name: string,
  appDir: string,
  overrides: { buildpacks?: string[]; signal?: AbortSignal; onLog?: (line: string) => void } = {},
) {
  const lines: string[] = [];
  const started = Date.now();
  const result = await runLifecycle({
    sandbox: PodmanBuildSandbox.create({ repoRoot: config.repoRoot, owner: "slipway-build-test" }),
    stack,
    buildpacks: overrides.buildpacks ?? buildpacks,
    appDir,
    workDir: path.join(root, name, "work"),
    cacheDir: path.join(root, name, "cache"),
    noCache: false,
    env: {},
    sourceDateEpoch: 1_700_000_000,
    limits: { memoryMb: 2048, cpus: 2 },
    npmRegistry: config.npmRegistry,
    name: `slipway-test-${name}-${randomBytes(3).toString("hex")}`,
    signal: overrides.signal ?? AbortSignal.timeout(300_000),
    onLog: (line) => {
      lines.push(line);
      overrides.onLog?.(line);
    },
  });
  return { result, lines, seconds: (Date.now() - started) / 1000 };
}

async function buildError(
  name: string,
  appDir: string,
  overrides: Parameters<typeof build>[2] = {},
): Promise<PipelineError> {
  try {
    await build(name, appDir, overrides);
  } catch (error) {
    if (error instanceof PipelineError) return error;
    throw error;
  }
  throw new Error("the build was expected to fail");
}

/** Serves the built app as its image would and returns the answer to `GET /`. */
async function serveAndGet(name: string, result: LifecycleResult): Promise<{ status: number; body: string }> {
  let answer = { status: 0, body: "" };
  await builder.serve(name, result, async (get) => {
    const res = await get("/");
    answer = { status: res.status, body: await res.text() };
  });
  return answer;
}

describe("CNB lifecycle in podman", () => {
  it("builds a Node app with an npm dependency, reuses node_modules on a code-only change, and serves it", async () => {
    const pkg = {
      name: "hello",
      version: "1.0.0",
      private: true,
      engines: { node: "22" },
      scripts: { start: "node server.js" },
      dependencies: { "is-number": "7.0.0" },
    };
    const server = (greeting: string) =>
      `const isNumber = require("is-number");\n` +
      `require("http").createServer((req, res) => res.end("${greeting} " + isNumber(5) + " " + process.version))` +
      `.listen(Number(process.env.PORT));\n`;
    const dir = await app("node", {
      "package.json": JSON.stringify(pkg, null, 2),
      "server.js": server("hello"),
    });
    await run("npm", ["install", "--package-lock-only", "--no-audit", "--no-fund"], {
      cwd: dir,
      env: process.env,
    });

    const cold = await build("node", dir);
    console.log(`node cold build: ${cold.seconds}s`);
    expect(cold.lines).toContain("===> DETECTING");
    expect(cold.lines).toContain("===> BUILDING");
    expect(cold.lines.some((l) => l.startsWith("Installing dependencies with npm ci"))).toBe(true);
    expect(cold.result.group.map((g) => g.id)).toEqual(["slipway/nodejs"]);
    const web = cold.result.processes.find((p) => p.type === "web");
    // The start script runs through bash, without npm (npm is in the image for Procfiles and jobs).
    expect(web).toMatchObject({
      command: ["bash", "-c"],
      args: ["node server.js"],
      default: true,
      buildpackId: "slipway/nodejs",
    });
    expect(cold.result.layers.map((l) => l.name)).toEqual(["node", "node_modules", "npm"]);

    // A code-only change: same lockfile, so the install is skipped.
    await writeFile(path.join(dir, "server.js"), server("hi"));
    const warm = await build("node", dir);
    console.log(`node warm build: ${warm.seconds}s`);
    expect(warm.lines.some((l) => l.startsWith("Reusing node_modules"))).toBe(true);
    expect(warm.lines.some((l) => l.startsWith("Installing dependencies"))).toBe(false);
    expect(warm.lines).toContain("===> RESTORING");

    const res = await serveAndGet("node", warm.result);
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^hi true v22\./);
  });

  it("builds a Python standard-library app and serves it", async () => {
    const dir = await app("python", {
      "app.py":
        "import http.server, os\n" +
        "class H(http.server.BaseHTTPRequestHandler):\n" +
        "    def do_GET(self):\n" +
        "        body = ('python ' + os.environ.get('VIRTUAL_ENV', '')).encode()\n" +
        "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n" +
        "http.server.HTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n",
    });
    const { result } = await build("python", dir);
    expect(result.group.map((g) => g.id)).toEqual(["slipway/python"]);
    expect(result.processes).toEqual([
      expect.objectContaining({ type: "web", command: ["python3"], args: ["app.py"], default: true }),
    ]);
    const res = await serveAndGet("python", result);
    expect(res.status).toBe(200);
    expect(res.body).toBe("python /layers/slipway_python/venv");
  });

  it("fails a build with a broken Procfile, naming the buildpack and the line", async () => {
    const dir = await app("procfile", {
      "app.py": "print('hi')\n",
      Procfile: "web: python3 app.py\nworker python3 w.py\n",
    });
    const error = await buildError("procfile", dir);
    expect(error.code).toBe("build_failed");
    expect(error.message).toContain("slipway/procfile");
    expect(error.message).toContain("exited with code 1");
    expect(error.details).toMatchObject({ phase: "build", buildpack: "slipway/procfile", exit_code: 1 });
    expect((error.details?.log_tail as string[]).join("\n")).toContain("Procfile line 2");
  });

  it("fails with a clear error when package.json is not JSON", async () => {
    const dir = await app("badjson", {
      "package.json": '{ "name": "x",\n  "scripts": { }\n  "version": "1" }\n',
    });
    const error = await buildError("badjson", dir);
    expect(error.code).toBe("build_failed");
    expect(error.details).toMatchObject({ buildpack: "slipway/nodejs" });
    expect((error.details?.log_tail as string[]).join("\n")).toMatch(
      /package\.json is not valid JSON: .* line 3/,
    );
  });

  it("reports what each buildpack looked for when nothing detects", async () => {
    const dir = await app("nothing", { "README.md": "# just docs\n" });
    const error = await buildError("nothing", dir);
    expect(error.code).toBe("detect_failed");
    expect(error.message).toContain("slipway/nodejs: fail — looks for package.json");
    expect(error.message).toContain("requirements.txt");
    expect(error.message).toContain("slipway/procfile: fail — looks for a Procfile");
  });

  it("uses the Procfile over the Node start script and keeps both buildpacks' layers", async () => {
    const dir = await app("mixed", {
      "package.json": JSON.stringify({ name: "m", version: "1.0.0", scripts: { start: "node a.js" } }),
      Procfile: "web: node server.js\nWORKER_1: node worker.js\n",
    });
    const { result } = await build("mixed", dir);
    expect(result.group.map((g) => g.id)).toEqual(["slipway/nodejs", "slipway/procfile"]);
    expect(result.processes).toEqual([
      expect.objectContaining({
        type: "web",
        command: ["bash", "-c"],
        args: ["node server.js"],
        default: true,
      }),
      expect.objectContaining({ type: "worker-1", default: false }),
    ]);
    const script = await readFile(path.join(result.cnbDir, "process", "web"), "utf8");
    expect(script).toContain("exec 'bash' '-c' 'node server.js'");
  });

  it("stops a build that runs past its timeout, naming the phase and buildpack", async () => {
    const bp = path.join(root, "slow-bp");
    await mkdir(path.join(bp, "bin"), { recursive: true });
    await writeFile(
      path.join(bp, "buildpack.toml"),
      'api = "0.10"\n[buildpack]\nid = "test/slow"\nversion = "1.0.0"\n',
    );
    await writeFile(path.join(bp, "bin", "detect"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    await writeFile(path.join(bp, "bin", "build"), "#!/bin/sh\necho sleeping\nsleep 120\n", { mode: 0o755 });
    const dir = await app("slow", { "README.md": "x\n" });
    // The build's time runs out once its buildpack is sleeping: a fixed few seconds from the start could
    // end in detect on a loaded machine. The reason is the TimeoutError AbortSignal.timeout gives.
    const timeout = new AbortController();
    let sleepingSince = Number.POSITIVE_INFINITY;
    const onLog = (line: string) => {
      if (!line.includes("sleeping")) return;
      sleepingSince = Date.now();
      setTimeout(() => timeout.abort(new DOMException("build timed out", "TimeoutError")), 1_000);
    };
    const error = await buildError("slow", dir, { buildpacks: [bp], signal: timeout.signal, onLog });
    expect(error.code).toBe("build_failed");
    expect(error.message).toBe("build timed out in phase build (buildpack test/slow)");
    // Stopped at the timeout, not after the buildpack's 120 s sleep.
    const sleptFor = Date.now() - sleepingSince;
    expect(sleptFor).toBeLessThan(60_000);
  });
});
