import { randomBytes } from "node:crypto";
import { readdir, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { run } from "../../services/platform/process.js";
import { git, gitRepo } from "../helpers/apps.js";
import { clientOf, startLocalServer, type LocalServer } from "../helpers/local-server.js";

// A hostile (or careless) tenant pushing more than the operator allows to Slipway's own git remote:
// git itself refuses an oversized pack while receiving it, a pre-receive hook refuses a push that would
// grow the repository past its cap, and in both cases the pusher reads why and nothing is stored.
const MIB = 1024 * 1024;
let local: LocalServer;
const { api } = clientOf(() => local.server);
type Tool = { name: string; token: string; git_url: string };
let tool: Tool;

beforeAll(async () => {
  local = await startLocalServer({
    name: "push-limits",
    role: "api",
    ready: false,
    env: { SLIPWAY_MAX_SOURCE_MB: "1", SLIPWAY_MAX_REPO_MB: "3" },
  });
}, 120_000);

afterAll(async () => {
  await local?.server.close();
  if (local) await rm(local.home, { recursive: true, force: true });
});

const pushUrl = () => tool.git_url.replace("http://", `http://user:${tool.token}@`);
const bareRepo = () => path.join(local.home, "repos", `${tool.name}.git`);

/** `git push`, which may fail: the refusal and its reason are what the tests are about. */
async function push(dir: string) {
  const res = await run("git", ["push", pushUrl(), "main"], {
    cwd: dir,
    env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
    allowFailure: true,
  });
  return { code: res.code, output: res.stdout + res.stderr };
}

/** Adds a file of `bytes` random (incompressible) bytes and commits it. */
async function commitRandom(dir: string, name: string, bytes: number): Promise<string> {
  await writeFile(path.join(dir, name), randomBytes(bytes));
  await git(dir, ["add", "-A"]);
  await git(dir, ["commit", "-q", "-m", `add ${name}`]);
  return (await git(dir, ["rev-parse", "HEAD"])).trim();
}

async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(p);
    else if (entry.isFile()) total += (await stat(p)).size;
  }
  return total;
}

async function remoteHas(commit: string): Promise<boolean> {
  const r = await run("git", ["--git-dir", bareRepo(), "cat-file", "-e", `${commit}^{commit}`], {
    allowFailure: true,
  });
  return r.code === 0;
}

async function builds(): Promise<{ commit: string }[]> {
  return api(`/api/v1/tools/${tool.name}/builds`);
}

describe("pushes to Slipway's git remote are limited", () => {
  // Each test pushes to a tool of its own.
  beforeEach(async (ctx) => {
    const name = ctx.task.name.startsWith("refuses a push whose") ? "pushy-pack" : "pushy-repo";
    tool = await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name }) });
  });

  it("refuses a push whose pack is over SLIPWAY_MAX_PUSH_MB (default the source limit), storing nothing", async () => {
    const repo = await gitRepo({ "README.md": "big\n" });
    try {
      const commit = await commitRandom(repo.dir, "blob.bin", 5 * MIB);
      const res = await push(repo.dir);

      expect(res.code).not.toBe(0);
      expect(res.output).toContain("remote: fatal: pack exceeds maximum allowed size");
      expect(await remoteHas(commit)).toBe(false);
      // The repository git created for the first push holds no part of the refused pack.
      expect(await treeBytes(path.join(bareRepo(), "objects"))).toBeLessThan(64 * 1024);
      expect(await builds()).toEqual([]);
    } finally {
      await rm(repo.dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("refuses a push that would grow the repository past SLIPWAY_MAX_REPO_MB, keeping what was there", async () => {
    const repo = await gitRepo({ "README.md": "growing\n" });
    try {
      // Three pushes of 0.9 MiB each are each under the push limit and together under the 3 MiB cap.
      const kept: string[] = [];
      for (const n of [1, 2, 3]) {
        kept.push(await commitRandom(repo.dir, `part-${n}.bin`, 0.9 * MIB));
        const ok = await push(repo.dir);
        expect(ok.code, ok.output).toBe(0);
        expect(ok.output).toMatch(/slipway: build \w+ queued/);
      }
      const before = await treeBytes(path.join(bareRepo(), "objects"));

      const refused = await commitRandom(repo.dir, "part-4.bin", 0.9 * MIB);
      const res = await push(repo.dir);

      expect(res.code).not.toBe(0);
      expect(res.output).toMatch(
        /remote: slipway: push refused: with it the repository would take 3\.\d MiB, over this server's limit of 3\.0 MiB per tool \(SLIPWAY_MAX_REPO_MB\)\. Nothing was stored\./,
      );
      expect(res.output).toMatch(/\[remote rejected\] main -> main \(pre-receive hook declined\)/);
      expect(await remoteHas(refused)).toBe(false);
      for (const c of kept) expect(await remoteHas(c)).toBe(true);
      // Git drops the quarantined objects of a refused push: the repository is as it was.
      expect(await treeBytes(path.join(bareRepo(), "objects"))).toBe(before);
      expect((await builds()).map((b) => b.commit)).not.toContain(refused);
    } finally {
      await rm(repo.dir, { recursive: true, force: true });
    }
  }, 180_000);
});
