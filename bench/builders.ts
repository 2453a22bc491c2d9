/**
 * Many builders (issue 17, item 6): `slipway server` processes as a split deployment runs them on one
 * machine — an api and a deployer on one SLIPWAY_HOME, and builders each on a SLIPWAY_HOME of its own —
 * sharing one redis-server and an external docker-registry. `burst` pushes builds of many tools at once
 * and watches every build from the store, so a test can check who built what (test/many-builders.test.ts)
 * and the bench can time one builder against two (`npm run bench -- builders`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { RedisServer } from "../services/adapters/redis/server.js";
import { RegistryServer } from "../services/adapters/registry/server.js";
import { RedisStore } from "../services/adapters/store/redis-store.js";
import type { Build } from "../services/domain/builds/build.js";
import { freePort } from "../services/platform/net.js";
import { run } from "../services/platform/process.js";
import { removeServerTraces } from "../services/adapters/podman/server-traces.js";

/** The checkout: this file runs from bench/ (vitest) or dist/bench/ (`npm run bench`). */
export const repoRoot = (() => {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return dir;
})();

/** The home files every role of one install must share (docs/operating.md, "Create the Secret"). */
const SHARED_HOME_FILES = ["admin-token", "builder-secret", "encryption-key"];

export interface RoleProcess {
  readonly role: "api" | "deployer" | "builder";
  readonly home: string;
  readonly child: ChildProcess;
  /** The builder's id in the builder registry (its "builder ready" line); undefined for other roles. */
  readonly builderId: string | undefined;
  /** stdout and stderr so far: pino JSON lines. */
  output(): string;
}

export interface Fleet {
  readonly apiUrl: string;
  readonly adminToken: string;
  readonly redisUrl: string;
  readonly registryUrl: string;
  readonly builders: readonly RoleProcess[];
  readonly processes: readonly RoleProcess[];
  readonly store: RedisStore;
  stop(): Promise<void>;
}

export interface FleetOptions {
  readonly builders: number;
  /** SLIPWAY_BUILD_CONCURRENCY of each builder. */
  readonly concurrency?: number;
  readonly stackHome: string;
  /** Where the fleet's homes, Redis and registry live; removed by `stop()`. */
  readonly dir?: string;
  readonly env?: Record<string, string>;
}

/**
 * Starts the fleet: Redis and the registry, the api (which creates the home's secrets), then the
 * deployer on the api's home and each builder on a home of its own holding copies of those secrets.
 * Resolves once every builder said "builder ready".
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const dir = options.dir ?? (await mkdtemp(path.join(os.tmpdir(), "slipway-fleet-")));
  const processes: RoleProcess[] = [];
  let redis: RedisServer | undefined;
  let registry: RegistryServer | undefined;
  let store: RedisStore | undefined;
  const stop = async () => {
    await Promise.all(processes.map(stopRole));
    const registryHost = registry && new URL(registry.url).host;
    for (const home of new Set(processes.map((p) => p.home)))
      await removeServerTraces({ repoRoot, home, registryHost });
    await store?.close();
    await registry?.close();
    await redis?.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await mkdir(path.join(dir, "redis"), { recursive: true });
    redis = await RedisServer.start(path.join(dir, "redis"), 0);
    registry = await RegistryServer.start({ dir: path.join(dir, "registry"), port: "random" });
    store = RedisStore.create(redis.url);
    const apiPort = await freePort();
    const env: Record<string, string> = {
      REDIS_URL: redis.url,
      SLIPWAY_REGISTRY_URL: registry.url,
      SLIPWAY_REGISTRY_USERNAME: registry.username,
      SLIPWAY_REGISTRY_PASSWORD: registry.password,
      // Every role names the api's address: builders fetch tools' repositories from its git remote.
      SLIPWAY_PORT: String(apiPort),
      SLIPWAY_STACK_HOME: options.stackHome,
      SLIPWAY_BUILD_CONCURRENCY: String(options.concurrency ?? 2),
      SLIPWAY_LOG_LEVEL: "info",
      ...options.env,
    };
    const apiHome = path.join(dir, "api");
    processes.push(await startRole("api", apiHome, env));
    processes.push(await startRole("deployer", apiHome, env));
    const homes = await Promise.all(
      Array.from({ length: options.builders }, async (_, i) => {
        const home = path.join(dir, `builder-${i + 1}`);
        await mkdir(home, { recursive: true, mode: 0o700 });
        for (const file of SHARED_HOME_FILES) await copyFile(path.join(apiHome, file), path.join(home, file));
        return home;
      }),
    );
    // One at a time: each builder checks the stack images at start, and two checks at once only cost.
    for (const home of homes) processes.push(await startRole("builder", home, env));
    const { readFile } = await import("node:fs/promises");
    const adminToken = (await readFile(path.join(apiHome, "admin-token"), "utf8")).trim();
    return {
      apiUrl: `http://127.0.0.1:${apiPort}`,
      adminToken,
      redisUrl: redis.url,
      registryUrl: registry.url,
      builders: processes.filter((p) => p.role === "builder"),
      processes,
      store,
      stop,
    };
  } catch (error) {
    const logs = processes.map((p) => `--- ${p.role} ${p.home}\n${p.output().slice(-2000)}`).join("\n");
    await stop();
    throw new Error(`the fleet did not start: ${String(error)}\n${logs}`, { cause: error });
  }
}

const READY_LINE = { api: "slipway is listening", deployer: "slipway started", builder: "builder ready" };

async function startRole(
  role: RoleProcess["role"],
  home: string,
  env: Record<string, string>,
): Promise<RoleProcess> {
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, "dist/services/main.js"), "server", "--role", role],
    {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: os.homedir(),
        SLIPWAY_HOME: home,
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let text = "";
  child.stdout.on("data", (c: Buffer) => (text += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (text += c.toString("utf8")));
  const deadline = Date.now() + 600_000;
  while (!text.includes(`"msg":"${READY_LINE[role]}"`)) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `the ${role} role exited (${child.exitCode ?? child.signalCode}):\n${text.slice(-3000)}`,
      );
    if (Date.now() > deadline)
      throw new Error(`the ${role} role did not start in 10 minutes:\n${text.slice(-3000)}`);
    await sleep(100);
  }
  const builderId =
    role === "builder" ? /"builder":"([^"]+)"[^\n]*"msg":"builder ready"/.exec(text)?.[1] : undefined;
  return { role, home, child, builderId, output: () => text };
}

async function stopRole(p: RoleProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once("exit", r));
  p.child.kill("SIGTERM");
  const timer = setTimeout(() => p.child.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(timer);
}

// --- the burst -----------------------------------------------------------------------------------------

/**
 * The fixture: an inline buildpack that writes a small layer and a web process (python's http.server).
 * No network during the build, so the builds' time is Slipway's own: fetch, the lifecycle's containers,
 * the layer's tar and gzip, the push.
 */
function tinyApp(tool: string, n: number): Record<string, string> {
  return {
    "project.toml": `[_]
schema-version = "0.2"

[[io.buildpacks.group]]
id = "bench/tiny"
  [io.buildpacks.group.script]
  api = "0.10"
  shell = "/bin/bash"
  inline = """
set -euo pipefail
mkdir -p "$CNB_LAYERS_DIR/data"
head -c 2000000 /dev/urandom > "$CNB_LAYERS_DIR/data/blob"
printf '[types]\\nlaunch = true\\n' > "$CNB_LAYERS_DIR/data.toml"
cat > "$CNB_LAYERS_DIR/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["bash", "-c", "exec python3 -m http.server $PORT"]
default = true
EOF
echo "tiny buildpack: done"
"""
`,
    "index.html": `${tool} build ${n}\n`,
  };
}

/** What one build did, as the store and the builders' logs tell it. */
export interface BurstBuild {
  readonly id: string;
  readonly tool: string;
  /** 1 for a tool's first push, 2 for its second… */
  readonly n: number;
  readonly pushedAt: number;
  /** When the watcher first saw it running (ms, Date.now()). */
  startedAt?: number;
  /** When it first left the builder: deploying, or ended. */
  builtAt?: number;
  record?: Build;
}

export interface BurstResult {
  readonly builds: BurstBuild[];
  /** First push to the last build leaving its builder. */
  readonly totalMs: number;
}

/**
 * `tools` tools each push `perTool` commits: the first at once, each next one as soon as the one before
 * runs (a push while the tool's previous build still waits would supersede it, by design: PRODUCT §4).
 * Resolves when every build has ended (`untilEnded`) or left its builder.
 */
export async function burst(
  fleet: Fleet,
  options: { tools: number; perTool: number; prefix: string; untilEnded: boolean; timeoutMs?: number },
): Promise<BurstResult> {
  const work = await mkdtemp(path.join(os.tmpdir(), "slipway-burst-"));
  try {
    const tools = await Promise.all(
      Array.from({ length: options.tools }, async (_, i) => {
        const name = `${options.prefix}-${i + 1}`;
        const res = await fetch(`${fleet.apiUrl}/api/v1/tools`, {
          method: "POST",
          headers: { authorization: `Bearer ${fleet.adminToken}`, "content-type": "application/json" },
          body: JSON.stringify({ name }),
        });
        if (!res.ok) throw new Error(`tools create ${name}: ${res.status} ${await res.text()}`);
        const tool = (await res.json()) as { token: string; git_url: string };
        const dir = path.join(work, name);
        await mkdir(dir);
        await git(dir, ["init", "-q", "-b", "main"]);
        const pushUrl = tool.git_url.replace("http://", `http://bench:${tool.token}@`);
        let pushed = 0;
        return {
          name,
          /** Commits and pushes the tool's next version; answers its build. */
          async pushNext(): Promise<BurstBuild> {
            pushed++;
            for (const [file, content] of Object.entries(tinyApp(name, pushed)))
              await writeFile(path.join(dir, file), content);
            await git(dir, ["add", "-A"]);
            await git(dir, ["commit", "-q", "-m", `v${pushed}`]);
            const out = await git(dir, ["push", pushUrl, "main"]);
            const id = /build (\w+) queued/.exec(out)?.[1];
            if (!id) throw new Error(`no build queued by the push of ${name}:\n${out}`);
            return { id, tool: name, n: pushed, pushedAt: Date.now() };
          },
        };
      }),
    );
    const first = Date.now();
    const builds = await Promise.all(tools.map((t) => t.pushNext()));
    const deadline = Date.now() + (options.timeoutMs ?? 1_200_000);
    for (;;) {
      for (const b of builds) {
        if (b.record && ended(b.record)) continue;
        b.record = await fleet.store.getBuild(b.id);
        const status = b.record?.status;
        if (b.startedAt === undefined && status !== undefined && status !== "pending")
          b.startedAt = Date.now();
        if (b.builtAt === undefined && b.record && (status === "deploying" || ended(b.record)))
          b.builtAt = Date.now();
      }
      // Each tool's next push once its newest build runs.
      for (const t of tools) {
        const newest = builds.filter((b) => b.tool === t.name).at(-1)!;
        if (newest.n < options.perTool && newest.startedAt !== undefined) builds.push(await t.pushNext());
      }
      const done =
        builds.length === options.tools * options.perTool &&
        builds.every((b) => (options.untilEnded ? b.record && ended(b.record) : b.builtAt !== undefined));
      if (done) break;
      if (Date.now() > deadline) {
        const open = builds
          .filter((b) => !(b.record && ended(b.record)))
          .map((b) => `${b.id} ${b.record?.status}`);
        throw new Error(`the burst did not end in time; still open: ${open.join(", ")}`);
      }
      await sleep(200);
    }
    const lastBuilt = Math.max(...builds.map((b) => b.builtAt ?? NaN));
    return { builds, totalMs: lastBuilt - first };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function ended(b: Build): boolean {
  return ["success", "failure", "cancelled", "superseded"].includes(b.status);
}

/** The build ids a builder's log says it finished building ("build done; deploying"), one per run. */
export function buildsDoneBy(p: RoleProcess): string[] {
  const ids: string[] = [];
  for (const line of p.output().split("\n"))
    if (line.includes('"msg":"build done; deploying"')) {
      const id = /"buildId":"([^"]+)"/.exec(line)?.[1];
      if (id) ids.push(id);
    }
  return ids;
}

async function git(cwd: string, args: string[]): Promise<string> {
  const r = await run("git", args, {
    cwd,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: os.homedir(),
      GIT_AUTHOR_NAME: "Bench",
      GIT_AUTHOR_EMAIL: "bench@example.org",
      GIT_COMMITTER_NAME: "Bench",
      GIT_COMMITTER_EMAIL: "bench@example.org",
      GIT_TERMINAL_PROMPT: "0",
    },
  });
  return r.stdout + r.stderr;
}
