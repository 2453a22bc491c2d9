import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pack } from "../services/adapters/git/pack.js";

const run = promisify(execFile);

/** Our pack index against real git's: packs made by `git pack-objects`, indexes compared with `git index-pack`. */
let root: string;
let repo: string;
let first: string;
let second: string;

async function git(args: string[], input?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "git",
      args,
      { cwd: repo, encoding: "buffer", maxBuffer: 64 * 1024 * 1024 },
      (error, stdout) => (error ? reject(new Error(error.message, { cause: error })) : resolve(stdout)),
    );
    child.stdin?.end(input);
  });
}

async function packOf(revs: string, options: string[]): Promise<Buffer> {
  return git(["pack-objects", "--stdout", ...options], revs);
}

async function gitIndex(pack: Buffer): Promise<Buffer> {
  const file = path.join(root, `p${Math.random().toString(36).slice(2)}.pack`);
  await writeFile(file, pack);
  await run("git", ["index-pack", file], { cwd: root });
  return readFile(file.replace(/\.pack$/, ".idx"));
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "slipway-pack-"));
  repo = path.join(root, "repo");
  await run("git", ["init", "-q", "-b", "main", repo]);
  const body = (n: number): string =>
    Array.from({ length: 200 }, (_, i) => `line ${i} of a file that differs only in ${n}\n`).join("");
  for (let i = 0; i < 20; i++) await writeFile(path.join(repo, `f${i}.txt`), body(i));
  await writeFile(path.join(repo, "big.bin"), Buffer.alloc(300_000, 7));
  await git(["add", "-A"]);
  await git(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one"]);
  first = (await git(["rev-parse", "HEAD"])).toString().trim();
  for (let i = 0; i < 20; i++) await writeFile(path.join(repo, `f${i}.txt`), `${body(i)}one more line\n`);
  await git(["add", "-A"]);
  await git(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "two"]);
  second = (await git(["rev-parse", "HEAD"])).toString().trim();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function expectSameAsGit(pack: Pack): Promise<void> {
  const listed = (await git(["rev-list", "--objects", "--all"])).toString().trim().split("\n");
  for (const oid of listed.map((l) => l.slice(0, 40))) {
    const object = pack.read(oid);
    expect(object, oid).toBeDefined();
    expect(object!.type).toBe((await git(["cat-file", "-t", oid])).toString().trim());
    expect(object!.data.equals(await git(["cat-file", object!.type, oid]))).toBe(true);
  }
}

describe("Pack: indexing a fetched pack with Node's zlib and crypto", () => {
  it("indexes a pack of ofs-deltas exactly as git index-pack does, and reads every object back", async () => {
    const bytes = await packOf(`${second}\n`, ["--revs", "--delta-base-offset"]);
    const pack = Pack.index(bytes);
    expect(pack.idx().equals(await gitIndex(bytes))).toBe(true);
    await expectSameAsGit(pack);
  });

  it("does the same for ref-deltas (a server that does not speak ofs-delta)", async () => {
    const bytes = await packOf(`${second}\n`, ["--revs"]);
    const pack = Pack.index(bytes);
    expect(pack.idx().equals(await gitIndex(bytes))).toBe(true);
    await expectSameAsGit(pack);
  });

  it("resolves a thin pack's bases from packs fetched before, and says so when they are missing", async () => {
    const full = Pack.index(await packOf(`${first}\n`, ["--revs"]));
    const thin = await packOf(`${second}\n^${first}\n`, ["--revs", "--thin"]);
    const pack = Pack.index(thin, (oid) => full.read(oid));
    const tree = (await git(["rev-parse", `${second}^{tree}`])).toString().trim();
    expect(pack.read(tree)?.type).toBe("tree");
    const f0 = (await git(["rev-parse", `${second}:f0.txt`])).toString().trim();
    expect(pack.read(f0)?.data.toString()).toMatch(/one more line\n$/);
    expect(() => Pack.index(thin)).toThrow(/corrupt pack: \d+ of its deltas have a base that is neither/);
  });

  it("rejects a damaged or truncated pack with a clear error", async () => {
    const bytes = await packOf(`${second}\n`, ["--revs", "--delta-base-offset"]);
    const flipped = Buffer.from(bytes);
    flipped[200] = flipped[200]! ^ 0xff;
    expect(() => Pack.index(flipped)).toThrow(/the remote sent a corrupt pack: its checksum does not match/);
    expect(() => Pack.index(bytes.subarray(0, 100))).toThrow(/the remote sent a corrupt pack/);
    expect(() => Pack.index(Buffer.from("not a pack at all, just some text here"))).toThrow(
      /corrupt pack: it does not start with PACK/,
    );
  });
});
