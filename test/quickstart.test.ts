import { spawn, type ChildProcess } from "node:child_process";
import { cp, mkdtemp, rm, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { freePort } from "../services/platform/net.js";
import { run, type RunResult } from "../services/platform/process.js";
import { git, waitFor } from "./helpers/apps.js";
import { removeAtEnd } from "./helpers/leftovers.js";
import { removeToolContainers } from "./helpers/local-server.js";
import { TEST_STACK_HOME, testBuildBackend } from "./helpers/stack.js";

/**
 * docs/quickstart.md replayed from a fresh clone's point of view: clone this checkout's HEAD (commit
 * first), build, `npm link` into a private prefix, `npm start`, then from another directory create a
 * tool, push a static site, follow its build, list builds and fetch the site. `npm ci` is replaced by a
 * link to this checkout's node_modules (the registry download, 101 s here, proves nothing about Slipway).
 */
const repoRoot = path.resolve(import.meta.dirname, "..");
const TOOL = "quick-site";

const temps: string[] = [];
let serverChild: ChildProcess | undefined;

async function temp(name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `slipway-qs-${name}-`));
  temps.push(dir);
  return dir;
}

/** False once no process of the group is left to take the signal. */
function signalGroup(group: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(group, signal);
    return true;
  } catch {
    return false;
  }
}

function mustPass(what: string, r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited with ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

afterAll(async () => {
  if (serverChild && serverChild.exitCode === null) {
    const gone = new Promise((resolve) => serverChild!.once("exit", resolve));
    // To the whole group, as Ctrl-C in the terminal does: npm passes a signal to its shell, not on to
    // the server under it, so signalling npm alone left the server, Redis and registry running.
    const group = -serverChild.pid!;
    signalGroup(group, "SIGTERM");
    const timer = setTimeout(() => signalGroup(group, "SIGKILL"), 30_000);
    await gone;
    // npm is gone; the server under it may still be stopping its Redis and registry.
    await waitFor(
      "the server's process group to end",
      () => Promise.resolve(signalGroup(group, 0) ? undefined : true),
      30_000,
      200,
    ).catch(() => signalGroup(group, "SIGKILL"));
    clearTimeout(timer);
  }
  await removeToolContainers(TOOL);
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
}, 120_000);

it("the quick start works from a fresh clone, with `slipway` on PATH, from another directory", async () => {
  const clone = path.join(await temp("clone"), "slipway");
  mustPass("git clone", await run("git", ["clone", "-q", repoRoot, clone], { allowFailure: true }));
  await symlink(path.join(repoRoot, "node_modules"), path.join(clone, "node_modules"));

  // `npm link` into a prefix of the test's own: the machine's global prefix is never touched.
  const prefix = await temp("prefix");
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    PATH: `${path.join(prefix, "bin")}:${process.env.PATH ?? ""}`,
    HOME: process.env.HOME,
    npm_config_prefix: prefix,
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
    npm_config_audit: "false",
    // The one variable the maintainer sets in both shells when 8080 is taken.
    SLIPWAY_PORT: String(port),
  };
  mustPass("npm run build", await run("npm", ["run", "build"], { cwd: clone, env, allowFailure: true }));
  // --ignore-scripts: `npm ci` (here `npm run build`) built dist/ already; npm link would run tsc again.
  mustPass(
    "npm link",
    await run("npm", ["link", "--ignore-scripts"], { cwd: clone, env, allowFailure: true }),
  );

  // `npm start`, home left at its default (<clone>/.slipway); the cached stack and free ports only.
  const serverEnv = {
    ...env,
    ...testBuildBackend(),
    SLIPWAY_STACK_HOME: TEST_STACK_HOME,
    SLIPWAY_REDIS_PORT: String(await freePort()),
    SLIPWAY_REGISTRY_PORT: String(await freePort()),
  };
  removeAtEnd(path.join(clone, ".slipway"), `127.0.0.1:${serverEnv.SLIPWAY_REGISTRY_PORT}`);
  serverChild = spawn("npm", ["start"], {
    cwd: clone,
    env: serverEnv,
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, like a terminal's foreground job, so the stop reaches the server too.
    detached: true,
  });
  let serverOutput = "";
  serverChild.stdout?.on("data", (c: Buffer) => (serverOutput += c.toString("utf8")));
  serverChild.stderr?.on("data", (c: Buffer) => (serverOutput += c.toString("utf8")));
  await waitFor(
    "npm start",
    async () => {
      if (serverChild?.exitCode !== null) throw new Error(`npm start exited:\n${serverOutput.slice(-3000)}`);
      // After the admin token is printed: `slipway started` is logged once the server is up.
      if (!serverOutput.includes('"msg":"slipway started"')) return undefined;
      return (await fetch(`http://127.0.0.1:${port}/api/v1/healthz`)).ok || undefined;
    },
    900_000,
    500,
  );
  expect(serverOutput).toContain(`Admin token (kept in ${path.join(clone, ".slipway")}/admin-token)`);

  // Another directory: the maintainer's own app.
  const app = path.join(await temp("app"), "site");
  await cp(path.join(repoRoot, "test/fixtures/apps/static-site"), app, { recursive: true });
  await git(app, ["init", "-q", "-b", "main"]);
  await git(app, ["add", "-A"]);
  await git(app, ["commit", "-q", "-m", "a static site"]);
  const slipway = async (...args: string[]) =>
    mustPass(`slipway ${args.join(" ")}`, await run("slipway", args, { cwd: app, env, allowFailure: true }));

  const created = (await slipway("tools", "create", TOOL)).stdout;
  const token = /token: +(\S+)/.exec(created)?.[1];
  expect(token, created).toBeDefined();
  await git(app, ["remote", "add", "slipway", `http://x:${token}@127.0.0.1:${port}/git/${TOOL}.git`]);
  const pushed = await git(app, ["push", "slipway", "main"]);
  const follow = /follow it with: (slipway build logs (\w+) -f)/.exec(pushed);
  expect(follow, pushed).not.toBeNull();
  expect(pushed).not.toContain("npx");

  const logs = await slipway("build", "logs", follow![2]!, "-f");
  expect(logs.stdout.length).toBeGreaterThan(0);
  const list = (await slipway("build", "list")).stdout;
  expect(list).toMatch(new RegExp(`^${follow![2]}\\s+success`, "m"));

  const page = await waitFor(
    `${TOOL} answering`,
    async () => {
      const r = await run("curl", ["-s", "-H", `Host: ${TOOL}.localhost`, `http://127.0.0.1:${port}/`], {
        allowFailure: true,
      });
      return r.stdout.includes("hello from a static site") ? r.stdout : undefined;
    },
    120_000,
    1000,
  );
  expect(page).toContain("hello from a static site");
}, 1_800_000);
