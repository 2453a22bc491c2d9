import { execFile } from "node:child_process";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IsomorphicGitFetcher } from "../services/adapters/git/fetcher.js";
import { SlipwayError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import { gitHttpBackend } from "./helpers/git-http.js";

const run = promisify(execFile);

/**
 * The pack as Slipway receives it (streamed to disk, indexed with Node's zlib and crypto): what it
 * checks out is what git checks out, and a pack damaged on the way is refused with a clear error.
 */
let root: string;
let server: Server;
let base: string;
let commit: string;
/** When set, the next upload-pack answer has one byte of its pack flipped, as a broken proxy might. */
let damage = false;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "slipway-fetch-pack-"));
  const work = path.join(root, "work");
  await run("git", ["init", "-q", "-b", "main", work]);
  const text = (i: number): string =>
    `${"the same long line in every file, so git deltas them\n".repeat(40)}${i}\n`;
  for (let i = 0; i < 30; i++) await writeFile(path.join(work, `f${i}.txt`), text(i));
  await mkdir(path.join(work, "bin"));
  await writeFile(path.join(work, "bin", "run"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
  await run("git", ["add", "-A"], { cwd: work });
  await run("git", ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one"], { cwd: work });
  commit = (await run("git", ["rev-parse", "HEAD"], { cwd: work })).stdout.trim();
  await run("git", ["clone", "-q", "--bare", work, path.join(root, "repos", "app.git")]);

  const app = express();
  app.use((req, res, next) => {
    if (!damage || !req.path.endsWith("/git-upload-pack")) return next();
    damage = false;
    const chunks: Buffer[] = [];
    const write = res.write.bind(res);
    const end = res.end.bind(res);
    res.write = ((chunk: Buffer) => (chunks.push(Buffer.from(chunk)), true)) as typeof res.write;
    res.end = (() => {
      const body = Buffer.concat(chunks);
      const at = body.indexOf("PACK") + 100;
      body[at] = body[at]! ^ 0x55;
      write(body);
      return end();
    }) as typeof res.end;
    next();
  });
  app.use(gitHttpBackend(path.join(root, "repos"), () => true));
  server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await rm(root, { recursive: true, force: true });
});

function fetcher(): IsomorphicGitFetcher {
  return IsomorphicGitFetcher.create({
    maxTotalBytes: 10 * 1024 * 1024,
    maxFileBytes: 1024 * 1024,
    workDir: path.join(root, "gitdirs"),
    allowHosts: [new URL(base).host],
    logger: memoryLogger(),
  });
}

describe("the fetched pack, indexed by Slipway", () => {
  it("checks out a delta-compressed tree exactly as git clone does, executable bits included", async () => {
    const dest = path.join(root, "dest-ok");
    const url = `http://u:p@${base.slice("http://".length)}/app.git`;
    await expect(fetcher().fetch({ url, ref: "refs/heads/main", commit }, dest)).resolves.toMatchObject({
      commit,
    });
    const clone = path.join(root, "clone");
    await run("git", ["clone", "-q", "--depth", "1", url, clone]);
    for (const name of (await readdir(clone)).filter((n) => n !== ".git")) {
      if (name === "bin") continue;
      expect((await readFile(path.join(dest, name))).equals(await readFile(path.join(clone, name)))).toBe(
        true,
      );
    }
    expect((await readFile(path.join(dest, "bin", "run"), "utf8")).startsWith("#!/bin/sh")).toBe(true);
    const { stdout } = await run("stat", ["-c", "%a", path.join(dest, "bin", "run")]);
    expect(stdout.trim()).toBe("755");
    // Nothing of the git directory is left behind.
    expect(await readdir(path.join(root, "gitdirs"))).toEqual([]);
  });

  it("refuses a pack damaged in transfer, saying so, and leaves the destination empty", async () => {
    damage = true;
    const dest = path.join(root, "dest-bad");
    const url = `http://u:p@${base.slice("http://".length)}/app.git`;
    const error = await fetcher()
      .fetch({ url, ref: "refs/heads/main", commit }, dest)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(SlipwayError);
    expect((error as SlipwayError).code).toBe("source_fetch_failed");
    expect((error as Error).message).toMatch(
      /^cannot fetch [0-9a-f]{12} of http:\/\/127\.0\.0\.1:\d+\/app\.git at refs\/heads\/main: the remote sent a corrupt pack: its checksum does not match/,
    );
    expect(await readdir(dest)).toEqual([]);
  });
});
