import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import os from "node:os";
import { gzipSync } from "node:zlib";
import path from "node:path";
import express, { type ErrorRequestHandler } from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessFetcher } from "../services/adapters/git/fetch-process.js";
import { createGitRemote, readDefaultBranch, type RefUpdate } from "../services/adapters/git/http-backend.js";
import { InputError, SlipwayError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";

const TOKEN = "tok-correct-horse";
const STATUS: Record<string, number> = {
  unauthorized: 401,
  invalid_name: 400,
  invalid_input: 400,
  not_found: 404,
};

let root: string;
let server: Server;
let base: string;
const pushes: { tool: string; updates: RefUpdate[] }[] = [];
const HOOK_SECRET = randomBytes(32).toString("base64url");
/** Runs while the hook waits for its answer, when a test wants to look then (or refuse the push). */
let duringPush: (() => Promise<void>) | undefined;

// A hermetic git: no user or system config, no prompts, fixed identity.
function gitEnv(home: string, date = "2024-05-01T12:00:00Z"): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_TERMINAL_PROMPT: "0",
    GIT_AUTHOR_NAME: "Maintainer",
    GIT_AUTHOR_EMAIL: "m@example.org",
    GIT_COMMITTER_NAME: "Maintainer",
    GIT_COMMITTER_EMAIL: "m@example.org",
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_DATE: date,
  };
}

/** Runs the real git CLI; stdin is closed so that nothing is written to a process that already exited. */
function git(
  cwd: string,
  args: string[],
  date?: string,
  allowFailure = false,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", args, { cwd, env: gitEnv(root, date), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const result = { code: code ?? 1, stdout, stderr };
      if (result.code !== 0 && !allowFailure) reject(new Error(`git ${args.join(" ")}: ${stderr}`));
      else resolve(result);
    });
  });
}

/** A work tree with the given files, committed; returns its directory and commit id. */
async function makeRepo(
  name: string,
  files: Record<string, string | { link: string }>,
  date?: string,
): Promise<{ dir: string; sha: string }> {
  const dir = path.join(root, "work", name);
  await mkdir(dir, { recursive: true });
  await git(dir, ["init", "--quiet", "--initial-branch=main"]);
  return { dir, sha: await commitFiles(dir, files, date) };
}

async function commitFiles(dir: string, files: Record<string, string | { link: string }>, date?: string) {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    if (typeof content === "string") await writeFile(file, content);
    else await symlink(content.link, file);
  }
  await git(dir, ["add", "-A"]);
  await git(dir, ["commit", "--quiet", "-m", "change"], date);
  return (await git(dir, ["rev-parse", "HEAD"])).stdout.trim();
}

function remoteUrl(tool: string, token = TOKEN): string {
  return `http://pusher:${token}@${base.slice("http://".length)}/git/${tool}.git`;
}

/** The builder's fetcher: each fetch in a child process running the compiled fetcher (`npm run build`). */
function fetcher(limits: { maxTotalBytes?: number; maxFileBytes?: number } = {}, logger = memoryLogger()) {
  return ProcessFetcher.create({
    entry: path.resolve(import.meta.dirname, "../dist/services/adapters/git/fetch-child.js"),
    maxTotalBytes: limits.maxTotalBytes ?? 100 * 1024 * 1024,
    maxFileBytes: limits.maxFileBytes ?? 10 * 1024 * 1024,
    workDir: path.join(root, "gitdirs"),
    // The test's git remote is on loopback, which only an allow-listed host may be.
    allowHosts: [new URL(base).host],
    logger,
  });
}

async function freshDest(name: string): Promise<string> {
  const dest = path.join(root, "dest", name);
  await mkdir(dest, { recursive: true });
  return dest;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "slipway-git-test-"));
  const remote = createGitRemote({
    reposDir: path.join(root, "repos"),
    logger: memoryLogger(),
    authorize: (_tool, password) => Promise.resolve(password === TOKEN),
    hookSecret: HOOK_SECRET,
    onPush: async (tool, updates) => {
      await duringPush?.();
      pushes.push({ tool, updates });
      const sha = updates[0]?.new.slice(0, 12) ?? "";
      return `build 01JTEST${pushes.length} queued for ${sha} — follow it with: npx slipway build logs 01JTEST -f`;
    },
  });
  const app = express();
  app.use("/git", remote.router);
  app.post("/internal/git-hook", remote.hookHandler);
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    const code = err instanceof SlipwayError ? err.code : "internal";
    res.status(STATUS[code] ?? 500).json({ error: { code, message: (err as Error).message } });
  };
  app.use(onError);
  server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(root, { recursive: true, force: true });
});

describe("slipway git remote + isomorphic-git fetcher", () => {
  let first: { dir: string; sha: string };

  it("accepts a push with the tool's token, reports the refs and shows the server's answer", async () => {
    first = await makeRepo("app", { "package.json": '{"name":"app"}\n', "src/index.js": "console.log(1)\n" });
    const push = await git(first.dir, ["push", remoteUrl("app"), "main"]);
    expect(pushes).toEqual([
      { tool: "app", updates: [{ old: "0".repeat(40), new: first.sha, ref: "refs/heads/main" }] },
    ]);
    expect(push.stderr).toMatch(
      /remote: build 01JTEST1 queued for [0-9a-f]{12} — follow it with: npx slipway build logs/,
    );
    expect(await readDefaultBranch(path.join(root, "repos"), "app")).toBe("main");
  });

  it("refuses a push with a wrong token and stores nothing", async () => {
    const other = await makeRepo("other", { "a.txt": "a\n" });
    const push = await git(other.dir, ["push", remoteUrl("other", "wrong"), "main"], undefined, true);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/Authentication failed|401/);
    await expect(stat(path.join(root, "repos", "other.git"))).rejects.toThrow();
    const res = await fetch(`${base}/git/other.git/info/refs?service=git-receive-pack`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Basic realm="slipway"/);
  });

  it("fetches the pushed commit back over HTTP with Basic auth, without .git", async () => {
    const dest = await freshDest("first");
    const got = await fetcher().fetch(
      {
        url: `${base}/git/app.git`,
        ref: "main",
        commit: first.sha,
        auth: { username: "x", password: TOKEN },
      },
      dest,
    );
    expect(got).toEqual({ commit: first.sha, commitTime: Date.parse("2024-05-01T12:00:00Z") / 1000 });
    expect((await readdir(dest)).sort()).toEqual(["package.json", "src"]);
    expect(await readFile(path.join(dest, "src/index.js"), "utf8")).toBe("console.log(1)\n");
    expect(await readdir(path.join(root, "gitdirs"))).toEqual([]);
  });

  it("fetches an older commit after the branch moved on (deepening)", async () => {
    await commitFiles(first.dir, { "src/index.js": "console.log(2)\n" }, "2024-05-02T12:00:00Z");
    await commitFiles(first.dir, { "src/index.js": "console.log(3)\n" }, "2024-05-03T12:00:00Z");
    await git(first.dir, ["push", remoteUrl("app"), "main"]);
    expect(pushes.at(-1)?.updates[0]?.old).toBe(first.sha);
    const dest = await freshDest("older");
    const logger = memoryLogger();
    const got = await fetcher({}, logger).fetch(
      {
        url: `${base}/git/app.git`,
        ref: "refs/heads/main",
        commit: first.sha,
        auth: { username: "x", password: TOKEN },
      },
      dest,
    );
    expect(got.commitTime).toBe(Date.parse("2024-05-01T12:00:00Z") / 1000);
    expect(logger.entries.filter((e) => e.msg.includes("deepening")).map((e) => e.fields)).toMatchObject([
      { depth: 10 },
    ]);
    expect(await readFile(path.join(dest, "src/index.js"), "utf8")).toBe("console.log(1)\n");
  });

  it("fetches the commit an annotated release tag points at", async () => {
    await git(first.dir, ["tag", "-a", "v1.0", "-m", "release", first.sha]);
    await git(first.dir, ["push", remoteUrl("app"), "v1.0"]);
    expect(pushes.at(-1)?.updates[0]?.ref).toBe("refs/tags/v1.0");
    for (const ref of ["refs/tags/v1.0", "v1.0"]) {
      const dest = await freshDest(`tag-${ref.length}`);
      const got = await fetcher().fetch(
        { url: `${base}/git/app.git`, ref, commit: first.sha, auth: { username: "x", password: TOKEN } },
        dest,
      );
      expect(got.commit).toBe(first.sha);
      expect(await readFile(path.join(dest, "src/index.js"), "utf8")).toBe("console.log(1)\n");
    }
  });

  it("says a commit is no longer reachable when it is not in the ref's history", async () => {
    const dest = await freshDest("gone");
    const missing = "1234567890abcdef1234567890abcdef12345678";
    const err = await fetcher()
      .fetch(
        {
          url: `${base}/git/app.git`,
          ref: "main",
          commit: missing,
          auth: { username: "x", password: TOKEN },
        },
        dest,
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "source_fetch_failed" });
    expect((err as Error).message).toContain(`commit ${missing} is no longer reachable from ref main`);
  });

  it("says the repository needs credentials, without echoing them", async () => {
    const dest = await freshDest("noauth");
    const err = await fetcher()
      .fetch(
        {
          url: `${base}/git/app.git`,
          ref: "main",
          commit: first.sha,
          auth: { username: "x", password: "s3cr3t-wrong" },
        },
        dest,
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "source_fetch_failed" });
    expect((err as Error).message).toMatch(/needs credentials/);
    expect(JSON.stringify({ m: (err as Error).message, d: (err as SlipwayError).details })).not.toContain(
      "s3cr3t",
    );
    expect(await readdir(dest)).toEqual([]);
  });

  it.each([
    ["absolute", "/etc/passwd"],
    ["relative", "../../x"],
  ])("rejects a symlink escaping the checkout (%s)", async (kind, target) => {
    const tool = `links-${kind}`;
    const repo = await makeRepo(tool, {
      "ok.txt": "ok\n",
      "inner/ok-link": { link: "../ok.txt" },
      "inner/evil": { link: target },
    });
    await git(repo.dir, ["push", remoteUrl(tool), "main"]);
    const dest = await freshDest(tool);
    const err = await fetcher()
      .fetch(
        {
          url: `${base}/git/${tool}.git`,
          ref: "main",
          commit: repo.sha,
          auth: { username: "x", password: TOKEN },
        },
        dest,
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "source_rejected", details: { path: "inner/evil" } });
    expect((err as Error).message).toContain('symlink "inner/evil"');
    expect(await readdir(dest)).toEqual([]);
  });

  it("rejects an oversized file, naming it and its size", async () => {
    const repo = await makeRepo("big", { "small.txt": "x\n", "assets/huge.bin": "z".repeat(50_000) });
    await git(repo.dir, ["push", remoteUrl("big"), "main"]);
    const dest = await freshDest("big");
    const err = await fetcher({ maxFileBytes: 10_000 })
      .fetch(
        {
          url: `${base}/git/big.git`,
          ref: "main",
          commit: repo.sha,
          auth: { username: "x", password: TOKEN },
        },
        dest,
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "source_rejected",
      details: { path: "assets/huge.bin", size: 50_000 },
    });
    expect((err as Error).message).toMatch(/"assets\/huge.bin" is 48.8 KiB/);
    const total = await fetcher({ maxTotalBytes: 20_000 })
      .fetch(
        {
          url: `${base}/git/big.git`,
          ref: "main",
          commit: repo.sha,
          auth: { username: "x", password: TOKEN },
        },
        dest,
      )
      .catch((e: unknown) => e);
    expect(total).toMatchObject({ code: "source_rejected", details: { path: "assets/huge.bin" } });
  });

  it.each(["..%2Fetc", "A_B", "..", "-x"])("refuses the tool name %s in the URL", async (name) => {
    const before = await readdir(path.join(root, "repos"));
    const res = await fetch(`${base}/git/${name}.git/info/refs?service=git-receive-pack`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}` },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_input");
    expect(await readdir(path.join(root, "repos"))).toEqual(before);
    expect(await readdir(root)).not.toContain("etc.git");
  });

  it("keeps the hook's secret out of every process's arguments, and shows a refused build's message", async () => {
    const repo = await makeRepo("secretive", { "a.txt": "a\n" });
    const exposed: string[] = [];
    duringPush = async () => {
      // The hook is waiting for this answer: its processes (sh, curl) are all running now.
      for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
        const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
        if (cmdline.includes(HOOK_SECRET)) exposed.push(cmdline.replaceAll("\0", " "));
      }
      throw new InputError('no build for "a\\b": refused by the test');
    };
    try {
      const push = await git(repo.dir, ["push", remoteUrl("secretive"), "main"]);
      expect(exposed).toEqual([]);
      expect(push.stderr).toContain(
        'remote: slipway: the push was stored but no build was started: no build for "a\\b": refused by the test',
      );
    } finally {
      duringPush = undefined;
    }
  });

  it("makes the first pushed branch the default when it is not main", async () => {
    const repo = await makeRepo("legacy", { "a.txt": "a\n" });
    await git(repo.dir, ["branch", "-m", "main", "master"]);
    await git(repo.dir, ["push", remoteUrl("legacy"), "master"]);
    expect(await readDefaultBranch(path.join(root, "repos"), "legacy")).toBe("master");
    expect(await readDefaultBranch(path.join(root, "repos"), "nonexistent")).toBeUndefined();
  });

  it("serves clones to the real git CLI (protocol v2) and gzip-encoded upload-pack requests", async () => {
    const clone = path.join(root, "clone");
    await git(root, ["clone", "--quiet", remoteUrl("app"), clone]);
    expect(await readFile(path.join(clone, "src/index.js"), "utf8")).toBe("console.log(3)\n");

    const pkt = (line: string) => `${(line.length + 4).toString(16).padStart(4, "0")}${line}`;
    const body = gzipSync(`${pkt(`want ${first.sha}\n`)}0000${pkt("done\n")}`);
    const res = await fetch(`${base}/git/app.git/git-upload-pack`, {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}`,
        "content-type": "application/x-git-upload-pack-request",
        "content-encoding": "gzip",
      },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-git-upload-pack-result");
    const out = Buffer.from(await res.arrayBuffer());
    expect(out.subarray(0, 8).toString()).toBe("0008NAK\n");
    expect(out.subarray(8, 12).toString()).toBe("PACK");
  });

  it("leaves submodules as empty directories and says so", async () => {
    const repo = await makeRepo("withsub", { "a.txt": "a\n" });
    await git(repo.dir, ["update-index", "--add", "--cacheinfo", `160000,${first.sha},vendor/lib`]);
    await git(repo.dir, ["commit", "--quiet", "-m", "add submodule"]);
    const sha = (await git(repo.dir, ["rev-parse", "HEAD"])).stdout.trim();
    await git(repo.dir, ["push", remoteUrl("withsub"), "main"]);
    const dest = await freshDest("withsub");
    const logger = memoryLogger();
    await fetcher({}, logger).fetch(
      { url: `${base}/git/withsub.git`, ref: "main", commit: sha, auth: { username: "x", password: TOKEN } },
      dest,
    );
    expect(await readdir(path.join(dest, "vendor/lib"))).toEqual([]);
    const warning = logger.entries.find((e) => e.level === "warn");
    expect(warning?.fields).toMatchObject({ submodules: ["vendor/lib"] });
  });

  it("stops when the build is cancelled", async () => {
    const dest = await freshDest("cancelled");
    const err = await fetcher()
      .fetch(
        {
          url: `${base}/git/app.git`,
          ref: "main",
          commit: first.sha,
          auth: { username: "x", password: TOKEN },
        },
        dest,
        AbortSignal.abort(),
      )
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "cancelled" });
    expect(await readdir(dest)).toEqual([]);
  });

  it("checks out thousands of files and one larger than a pack chunk exactly as git clone does", async () => {
    const files: Record<string, string | { link: string }> = { "bin/run": "#!/bin/sh\necho run\n" };
    for (let d = 0; d < 30; d++) {
      for (let f = 0; f < 100; f++) files[`src/d${d}/f${f}.txt`] = `dir ${d} file ${f}\n`.repeat(f % 7);
    }
    files["src/latest"] = { link: "d29/f99.txt" };
    const repo = await makeRepo("many", files);
    // Incompressible, so that it spans many pack and HTTP chunks.
    await mkdir(path.join(repo.dir, "assets"));
    await writeFile(path.join(repo.dir, "assets/blob.bin"), randomBytes(3 * 1024 * 1024 + 17));
    await chmod(path.join(repo.dir, "bin/run"), 0o755);
    const sha = await commitFiles(repo.dir, {});
    await git(repo.dir, ["push", remoteUrl("many"), "main"]);
    const dest = await freshDest("many");
    await fetcher().fetch(
      { url: `${base}/git/many.git`, ref: "main", commit: sha, auth: { username: "x", password: TOKEN } },
      dest,
    );
    const clone = path.join(root, "clone-many");
    await git(root, ["clone", "--quiet", "--depth", "1", remoteUrl("many"), clone]);
    await rm(path.join(clone, ".git"), { recursive: true });
    const got = await describeTree(dest);
    expect(got.size).toBe(3000 + 3);
    expect(got).toEqual(await describeTree(clone));
    expect(got.get("bin/run")).toMatch(/^file 755 /);
    expect(got.get("src/latest")).toBe("link d29/f99.txt");
  });

  it("kills the fetch process when the build is cancelled mid-fetch, leaving nothing behind", async () => {
    const dest = await freshDest("cancelled-mid");
    const controller = new AbortController();
    const pending = fetcher()
      .fetch(
        {
          url: `${base}/git/many.git`,
          ref: "main",
          commit: (await git(path.join(root, "work", "many"), ["rev-parse", "HEAD"])).stdout.trim(),
          auth: { username: "x", password: TOKEN },
        },
        dest,
        controller.signal,
      )
      .catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 300);
    expect(await pending).toMatchObject({ code: "cancelled" });
    expect(await readdir(dest)).toEqual([]);
    expect(await readdir(path.join(root, "gitdirs"))).toEqual([]);
  });

  it("rejects hook calls without the server's secret", async () => {
    const res = await fetch(`${base}/internal/git-hook`, {
      method: "POST",
      headers: { "x-slipway-hook-secret": "guess", "x-slipway-tool": "app" },
      body: `${"0".repeat(40)} ${"1".repeat(40)} refs/heads/main\n`,
    });
    expect(res.status).toBe(401);
  });
});

/** Every file under `dir`: path -> "file <mode> <size> <sha256>" or "link <target>". */
async function describeTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(path.join(dir, rel))) {
      const p = rel === "" ? name : `${rel}/${name}`;
      const st = await lstat(path.join(dir, p));
      if (st.isDirectory()) await walk(p);
      else if (st.isSymbolicLink()) out.set(p, `link ${await readlink(path.join(dir, p))}`);
      else {
        const digest = createHash("sha256")
          .update(await readFile(path.join(dir, p)))
          .digest("hex");
        out.set(p, `file ${(st.mode & 0o777).toString(8)} ${st.size} ${digest}`);
      }
    }
  };
  await walk("");
  return out;
}
