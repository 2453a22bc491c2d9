import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../services/platform/env.js";
import { run } from "../services/platform/process.js";
import { buildCli } from "../services/roles/cli/cli.js";
import type { RunningServer } from "../services/roles/server/server.js";
import { git } from "./helpers/apps.js";
import { startLocalServer } from "./helpers/local-server.js";

/**
 * The CLI as a maintainer meets it (the built dist/, `npm run build` first): which server it talks to,
 * how fast it says nothing answers, `--version`, help for every command, which tool a command is about,
 * and what `tools show` prints.
 */
const repoRoot = path.resolve(import.meta.dirname, "..");

let server: RunningServer;
let home: string;
let port: number;
const tools: Record<string, { name: string; token: string; git_url: string }> = {};
const dirs: string[] = [];

/** The real CLI with only the variables given: nothing SLIPWAY_* leaks in from the test's environment. */
function slipway(args: string[], env: Record<string, string> = {}, cwd = repoRoot) {
  return run(process.execPath, [path.join(repoRoot, "dist/services/main.js"), ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    allowFailure: true,
  });
}

const admin = () => ({ SLIPWAY_PORT: String(port), SLIPWAY_TOKEN: server.adminToken, SLIPWAY_HOME: home });

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-cli-"));
  dirs.push(dir);
  return dir;
}

beforeAll(async () => {
  ({ server, home, port } = await startLocalServer({ name: "cli", role: "api", ready: false }));
  for (const name of ["cli-alpha", "cli-beta"]) {
    const res = await fetch(`${server.url}/api/v1/tools`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    tools[name] = (await res.json()) as (typeof tools)[string];
  }
}, 300_000);

afterAll(async () => {
  await server?.close();
  if (home) await rm(home, { recursive: true, force: true });
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe("which server the CLI talks to", () => {
  it("uses SLIPWAY_PORT (and SLIPWAY_HOST) when SLIPWAY_URL is unset", async () => {
    const r = await slipway(["tools", "list"], admin());
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("cli-alpha");
    expect(r.code).toBe(0);
  });

  it("SLIPWAY_URL wins over SLIPWAY_PORT", async () => {
    const r = await slipway(["tools", "list"], { ...admin(), SLIPWAY_URL: server.url, SLIPWAY_PORT: "1" });
    expect(r.stdout).toContain("cli-beta");
  });

  it("says what to set, and that this home's server runs, when nothing listens on the port", async () => {
    const closed = await closedPort();
    const r = await slipway(["tools", "list"], { ...admin(), SLIPWAY_PORT: String(closed) });
    expect(r.code).toBe(1);
    const [first, second] = r.stderr.split("\n");
    expect(first).toMatch(/^slipway: set SLIPWAY_URL \(or SLIPWAY_HOST and SLIPWAY_PORT\)/);
    expect(first).toContain(
      `no Slipway server answers at http://127.0.0.1:${closed} (from SLIPWAY_HOST/SLIPWAY_PORT)`,
    );
    expect(first).toContain("connection refused");
    expect(second).toContain(`a Slipway server runs from ${home} (pid ${process.pid})`);
  });

  it("says no server runs from a home that has none", async () => {
    const empty = await tempDir();
    const r = await slipway(["build", "list"], {
      SLIPWAY_HOME: empty,
      SLIPWAY_URL: `http://127.0.0.1:${await closedPort()}`,
    });
    expect(r.stderr).toContain("(from SLIPWAY_URL)");
    expect(r.stderr).toContain(`no Slipway server runs from ${empty}; start one with \`npm start\``);
  });

  it("gives up after about 3 s on a port whose program never answers, instead of waiting minutes", async () => {
    // Accepts connections and never says a word, like a hung process or a stray listener.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => void sockets.push(socket));
    const p = await listen(silent);
    try {
      const r = await slipway(["tools", "list"], { SLIPWAY_URL: `http://127.0.0.1:${p}` });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^slipway: set SLIPWAY_URL/);
      expect(r.stderr).toContain("no answer within 3 s");
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  }, 60_000);

  it("says so when what answers on the port is not Slipway", async () => {
    const other = http.createServer((_req, res) => res.writeHead(404).end("not here"));
    const p = await listen(other);
    try {
      const r = await slipway(["build", "list"], { SLIPWAY_PORT: String(p) });
      expect(r.stderr).toMatch(/^slipway: set SLIPWAY_URL/);
      expect(r.stderr).toContain(
        `http://127.0.0.1:${p} answered GET /api/v1/tools with HTTP 404, not as Slipway does`,
      );
    } finally {
      other.close();
    }
  });
});

describe("version and help", () => {
  it("--version prints package.json's version", async () => {
    const pkg = JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")) as {
      version: string;
    };
    const r = await slipway(["--version"]);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it("every command and subcommand has a description", () => {
    const program = buildCli(loadConfig({}), () => Promise.resolve());
    const missing: string[] = [];
    const walk = (cmd: Command, trail: string[]) => {
      for (const sub of cmd.commands) {
        const name = [...trail, sub.name()];
        if (!sub.description().trim()) missing.push(name.join(" "));
        walk(sub, name);
      }
    };
    walk(program, []);
    expect(program.commands.length).toBeGreaterThan(5);
    expect(missing).toEqual([]);
  });
});

describe("which tool a command is about", () => {
  /** `webservice status` names the tool it reports on in its first word. */
  const toolOf = async (env: Record<string, string>, cwd: string, extra: string[] = []) => {
    const r = await slipway(["webservice", "status", ...extra], env, cwd);
    return r.code === 0 ? r.stdout.split(":")[0] : `error: ${r.stderr}`;
  };

  it("the git remote of the working directory that points at this server's /git/<tool>.git", async () => {
    const repo = await tempDir();
    await git(repo, ["init", "-q"]);
    const url = new URL(tools["cli-beta"]!.git_url);
    url.username = "x";
    url.password = "secret";
    await git(repo, ["remote", "add", "slipway", url.toString()]);
    await git(repo, ["remote", "add", "origin", "https://gitlab.example.org/someone/app.git"]);
    expect(await toolOf(admin(), repo)).toBe("cli-beta");
    // SLIPWAY_TOOL beats the remote, --tool beats both.
    expect(await toolOf({ ...admin(), SLIPWAY_TOOL: "cli-alpha" }, repo)).toBe("cli-alpha");
    expect(await toolOf({ ...admin(), SLIPWAY_TOOL: "cli-alpha" }, repo, ["--tool", "cli-beta"])).toBe(
      "cli-beta",
    );
  });

  it("the token's only tool, outside any repository", async () => {
    const dir = await tempDir();
    const env = { ...admin(), SLIPWAY_TOKEN: tools["cli-alpha"]!.token };
    expect(await toolOf(env, dir)).toBe("cli-alpha");
  });

  it("otherwise an error that lists the choices", async () => {
    const dir = await tempDir();
    const r = await slipway(["build", "list"], admin(), dir);
    expect(r.code).toBe(1);
    const lines = r.stderr.split("\n");
    expect(lines[0]).toMatch(/^slipway: which tool\? pass --tool <name> or set SLIPWAY_TOOL/);
    expect(lines[1]).toMatch(/choices: .*cli-alpha, cli-beta/);
  });
});

describe("tools show", () => {
  it("prints a short summary, and the whole record with --json", async () => {
    const r = await slipway(["tools", "show", "cli-alpha"], admin());
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe("tool cli-alpha");
    expect(r.stdout).toMatch(/live release +none yet/);
    expect(r.stdout).toMatch(/jobs +0/);
    expect(r.stdout).toMatch(/webservice +\S+/);
    expect(r.stdout).toMatch(/GitLab +not linked/);
    expect(r.stdout).toContain(tools["cli-alpha"]!.git_url);
    expect(r.stdout).not.toContain("{");
    expect(lines.length).toBeLessThan(15);
    const json = await slipway(["tools", "show", "cli-alpha", "--json"], admin());
    expect((JSON.parse(json.stdout) as { name: string }).name).toBe("cli-alpha");
  });
});

describe("tools rotate", () => {
  it("shows a new token once; the old token is refused from then on, the new one works", async () => {
    const old = { SLIPWAY_PORT: String(port), SLIPWAY_TOKEN: tools["cli-beta"]!.token, SLIPWAY_HOME: home };
    expect((await slipway(["tools", "show", "cli-beta"], old)).code).toBe(0);
    const r = await slipway(["tools", "rotate", "cli-beta", "token", "--json"], old);
    expect(r.code).toBe(0);
    const { token } = JSON.parse(r.stdout) as { token: string };
    expect(token).toMatch(/^slp/);
    const refused = await slipway(["tools", "show", "cli-beta"], old);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/token/i);
    expect((await slipway(["tools", "show", "cli-beta"], { ...old, SLIPWAY_TOKEN: token })).code).toBe(0);
    tools["cli-beta"] = { ...tools["cli-beta"]!, token };
  });

  it("names the secrets it can replace when asked for another", async () => {
    const r = await slipway(["tools", "rotate", "cli-alpha", "password"], admin());
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("token, webhook-secret, redeploy-url");
  });
});

describe("tools notify", () => {
  const alpha = () => ["tools", "notify", "cli-alpha"];

  it("adds and removes a recipient, says when there was nothing to do, and that no mail is sent here", async () => {
    const empty = await slipway([...alpha(), "list"], admin());
    expect(empty.code).toBe(0);
    expect(empty.stdout.trim().split("\n")).toEqual([
      "Recipients of cli-alpha: none",
      "  (this server sends no mail: SLIPWAY_SMTP_URL is not set)",
      "Webhook: none",
    ]);
    const added = await slipway([...alpha(), "add", "Maintainer@Example.org"], admin());
    expect(added.stdout.trim()).toBe("maintainer@example.org is told about cli-alpha.");
    const again = await slipway([...alpha(), "add", "maintainer@example.org"], admin());
    expect(again.stdout.trim()).toMatch(/was already told about cli-alpha\.$/);
    expect((await slipway([...alpha(), "list"], admin())).stdout).toMatch(
      /^Recipients of cli-alpha: maintainer@example\.org$/im,
    );
    const removed = await slipway([...alpha(), "remove", "maintainer@example.org"], admin());
    expect(removed.stdout.trim()).toBe("maintainer@example.org is no longer told about cli-alpha.");
    expect((await slipway([...alpha(), "list"], admin())).stdout).toContain("Recipients of cli-alpha: none");
  });

  it("shows a webhook's secret once, when it is set; the list shows the URL only", async () => {
    const url = "https://chat.example.org/hooks/slipway";
    const set = await slipway([...alpha(), "webhook", url], admin());
    expect(set.code).toBe(0);
    const secret = /secret: (\S+)/.exec(set.stdout)?.[1];
    expect(secret).toMatch(/^sln/);
    const list = await slipway([...alpha(), "list"], admin());
    expect(list.stdout).toContain(`Webhook: ${url}`);
    expect(list.stdout).not.toContain(secret!);
    expect((await slipway([...alpha(), "list", "--json"], admin())).stdout).not.toContain(secret!);
    expect((await slipway([...alpha(), "unset-webhook"], admin())).code).toBe(0);
    expect((await slipway([...alpha(), "list"], admin())).stdout).toContain("Webhook: none");
  });

  it("refuses a missing value, an unknown action, a bad address and another tool's token, changing nothing", async () => {
    const noValue = await slipway([...alpha(), "add"], admin());
    expect(noValue.code).not.toBe(0);
    expect(noValue.stderr).toContain("tools notify cli-alpha add needs an email address");
    const unknown = await slipway([...alpha(), "mute"], admin());
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("list, add, remove, webhook, unset-webhook");
    const bad = await slipway([...alpha(), "add", "not an address"], admin());
    expect(bad.code).not.toBe(0);
    const beta = { SLIPWAY_PORT: String(port), SLIPWAY_TOKEN: tools["cli-beta"]!.token, SLIPWAY_HOME: home };
    const foreign = await slipway([...alpha(), "add", "intruder@example.org"], beta);
    expect(foreign.code).not.toBe(0);
    expect((await slipway([...alpha(), "list"], admin())).stdout).toContain("Recipients of cli-alpha: none");
  });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port: p } = srv.address() as net.AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return p;
}

async function listen(srv: net.Server): Promise<number> {
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return (srv.address() as net.AddressInfo).port;
}
