import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileConfined, readdirConfined, writeFileConfined } from "./confined-fs.js";

let base: string;
let root: string;
let outside: string;

beforeAll(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), "confined-"));
  root = path.join(base, "root");
  outside = path.join(base, "outside");
  await mkdir(path.join(root, "a", "b"), { recursive: true });
  await mkdir(outside);
  await writeFile(path.join(outside, "secret"), "secret\n");
  await writeFile(path.join(root, "a", "b", "file.toml"), "x = 1\n");
  await symlink(path.join(outside, "secret"), path.join(root, "a", "link"));
  await symlink(outside, path.join(root, "dirlink"));
  await symlink("b", path.join(root, "a", "relative"));
  execFileSync("mkfifo", [path.join(root, "a", "fifo")]);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("confined file access", () => {
  it("reads and lists regular files and directories", async () => {
    expect(await readFileConfined(root, "a/b/file.toml")).toBe("x = 1\n");
    expect((await readdirConfined(root, "a")).map((e) => e.name).sort()).toEqual([
      "b",
      "fifo",
      "link",
      "relative",
    ]);
  });

  it("refuses a symlink as the file, even one pointing inside the root", async () => {
    await expect(readFileConfined(root, "a/link")).rejects.toThrow("a/link: not a regular file");
    await expect(readFileConfined(root, "a/relative/file.toml")).rejects.toThrow("not a regular file");
  });

  it("refuses a symlink on the way to a file or directory", async () => {
    await expect(readFileConfined(root, "dirlink/secret")).rejects.toThrow("dirlink/secret: not a regular");
    await expect(readdirConfined(root, "dirlink")).rejects.toThrow("not a regular file or directory");
  });

  it("refuses a FIFO at once instead of waiting for a writer", async () => {
    await expect(readFileConfined(root, "a/fifo")).rejects.toThrow("a/fifo: not a regular file");
  });

  it("answers ENOENT for what does not exist", async () => {
    await expect(readFileConfined(root, "a/none")).rejects.toMatchObject({ code: "ENOENT" });
    await expect(readdirConfined(root, "none")).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("writes new files and directories, but never through a symlink", async () => {
    await writeFileConfined(root, "new/dir/plan.toml", "y = 2\n");
    expect(await readFile(path.join(root, "new", "dir", "plan.toml"), "utf8")).toBe("y = 2\n");
    await expect(writeFileConfined(root, "a/link", "overwritten")).rejects.toThrow("not a regular file");
    await expect(writeFileConfined(root, "dirlink/planted", "x")).rejects.toThrow("not a regular file");
    expect(await readFile(path.join(outside, "secret"), "utf8")).toBe("secret\n");
    await expect(readFile(path.join(outside, "planted"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses a path that climbs out with ..", async () => {
    await expect(readFileConfined(root, "a/../../outside/secret")).rejects.toThrow("must not contain ..");
  });
});
