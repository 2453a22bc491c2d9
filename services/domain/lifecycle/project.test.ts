import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { globMatcher, parseProjectToml, projectOrder, pruneAppDir, writeInlineBuildpack } from "./project.js";
import { parseBuildpackToml } from "./buildpack.js";

const V02 = '[_]\nschema-version = "0.2"\n';

function problem(text: string): string {
  try {
    parseProjectToml(text);
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return (error as Error).message;
  }
  throw new Error("expected an InputError");
}

describe("parseProjectToml", () => {
  it("reads build env, exclude, and a group with an inline script", () => {
    const p = parseProjectToml(`${V02}
[io.buildpacks]
exclude = ["spec/", "*.log"]

[[io.buildpacks.build.env]]
name = "GREETING"
value = "hello world"

[[io.buildpacks.build.env]]
name = "EMPTY"
value = ""

[[io.buildpacks.group]]
id = "slipway/nodejs"

[[io.buildpacks.group]]
id = "me/inline"
  [io.buildpacks.group.script]
  api = "0.10"
  inline = "echo hi"
  shell = "/bin/bash"
`);
    expect(p.buildEnv).toEqual({ GREETING: "hello world", EMPTY: "" });
    expect(p.exclude).toEqual(["spec/", "*.log"]);
    expect(p.include).toBeUndefined();
    expect(p.group).toEqual([
      { kind: "ref", id: "slipway/nodejs", version: undefined },
      {
        kind: "inline",
        id: "me/inline",
        version: "0.0.0",
        api: "0.10",
        shell: "/bin/bash",
        inline: "echo hi",
      },
    ]);
  });

  it("defaults an inline script's shell to /bin/sh, as pack does", () => {
    const p = parseProjectToml(
      `${V02}[[io.buildpacks.group]]\nid = "x/y"\n[io.buildpacks.group.script]\napi = "0.10"\ninline = "true"\n`,
    );
    expect(p.group?.[0]).toMatchObject({ kind: "inline", shell: "/bin/sh" });
  });

  it("ignores files that only configure other tools, and needs no [_] for them", () => {
    expect(parseProjectToml('[com.heroku.buildpacks.deb-packages]\ninstall = ["jq"]\n')).toEqual({
      buildEnv: {},
      pre: [],
      post: [],
    });
    expect(parseProjectToml(`${V02}[_.metadata]\nx = 1\n`)).toEqual({ buildEnv: {}, pre: [], post: [] });
  });

  it("names the file and the field of each problem", () => {
    expect(problem("[io.buildpacks\n")).toMatch(/^project\.toml: not valid TOML/);
    expect(problem('[_]\nschema-version = "0.1"\n')).toContain(
      'project.toml: [_] schema-version must be "0.2"',
    );
    expect(problem('[io.buildpacks]\nexclude = ["a"]\n')).toContain("[_] schema-version is required");
    expect(problem('[build]\nexclude = ["a"]\n')).toContain("schema 0.1");
    expect(problem(`${V02}[io.buildpacks]\ninclude = ["a"]\nexclude = ["b"]\n`)).toContain(
      "include or exclude, not both",
    );
    expect(problem(`${V02}[io.buildpacks]\nexclude = "spec"\n`)).toContain(
      "[io.buildpacks] exclude must be an array of strings",
    );
    expect(problem(`${V02}[[io.buildpacks.build.env]]\nname = "1BAD"\nvalue = "x"\n`)).toContain(
      "[[io.buildpacks.build.env]] #1 name must be an environment variable name",
    );
    expect(problem(`${V02}[[io.buildpacks.build.env]]\nname = "CNB_X"\nvalue = "x"\n`)).toContain("reserved");
    expect(problem(`${V02}[[io.buildpacks.build.env]]\nname = "A"\nvalue = 3\n`)).toContain(
      "[[io.buildpacks.build.env]] #1 value must be a string",
    );
    expect(problem(`${V02}[[io.buildpacks.group]]\nversion = "1"\n`)).toContain(
      "[[io.buildpacks.group]] #1 id must be a buildpack id",
    );
    expect(problem(`${V02}[[io.buildpacks.group]]\nuri = "docker://x"\n`)).toContain(
      "[[io.buildpacks.group]] #1 uri is not supported",
    );
    expect(
      problem(`${V02}[[io.buildpacks.group]]\nid = "a/b"\n[io.buildpacks.group.script]\ninline = "x"\n`),
    ).toContain("script.api is required");
    expect(
      problem(
        `${V02}[[io.buildpacks.group]]\nid = "a/b"\n[io.buildpacks.group.script]\napi = "0.2"\ninline = "x"\n`,
      ),
    ).toContain('[[io.buildpacks.group]] #1 script.api must be one of 0.9, 0.10, 0.11, 0.12 (got "0.2")');
    expect(
      problem(
        `${V02}[[io.buildpacks.group]]\nid = "a/b"\n[io.buildpacks.group.script]\napi = "0.10"\ninline = "x"\nshell = "/bin/sh -c rm"\n`,
      ),
    ).toContain("script.shell must be an absolute path");
    expect(problem(`${V02}[[io.buildpacks.group]]\nid = "a"\n[[io.buildpacks.group]]\nid = "a"\n`)).toContain(
      "names a twice",
    );
  });
});

describe("globMatcher (gitignore semantics)", () => {
  const m = (patterns: string[], rel: string, isDir = false) => globMatcher(patterns)(rel, isDir);

  it("matches a slash-less pattern at any depth and an anchored one at the root only", () => {
    expect(m(["*.log"], "a.log")).toBe(true);
    expect(m(["*.log"], "deep/dir/a.log")).toBe(true);
    expect(m(["*.log"], "a.logx")).toBe(false);
    expect(m(["/build"], "build", true)).toBe(true);
    expect(m(["/build"], "src/build", true)).toBe(false);
    expect(m(["docs/*.md"], "docs/a.md")).toBe(true);
    expect(m(["docs/*.md"], "docs/x/a.md")).toBe(false);
    expect(m(["docs/*.md"], "other/docs/a.md")).toBe(false);
  });

  it("handles trailing slash (directories only), **, ?, classes and negation", () => {
    expect(m(["spec/"], "spec", true)).toBe(true);
    expect(m(["spec/"], "spec", false)).toBe(false);
    expect(m(["**/fixtures/*.json"], "a/b/fixtures/x.json")).toBe(true);
    expect(m(["**/fixtures/*.json"], "fixtures/x.json")).toBe(true);
    expect(m(["src/**"], "src/a/b.ts")).toBe(true);
    expect(m(["a/**/z"], "a/z")).toBe(true);
    expect(m(["a/**/z"], "a/b/c/z")).toBe(true);
    expect(m(["file?.txt"], "file1.txt")).toBe(true);
    expect(m(["file?.txt"], "file12.txt")).toBe(false);
    expect(m(["[abc].md"], "b.md")).toBe(true);
    expect(m(["[!abc].md"], "b.md")).toBe(false);
    expect(m(["*.md", "!README.md"], "README.md")).toBe(false);
    expect(m(["*.md", "!README.md"], "CHANGES.md")).toBe(true);
    expect(m(["a.b"], "axb")).toBe(false); // '.' is literal
  });
});

describe("pruneAppDir", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function app(files: string[]): Promise<string> {
    dir = await mkdtemp(path.join(tmpdir(), "slipway-prune-"));
    for (const f of files) {
      await mkdir(path.dirname(path.join(dir, f)), { recursive: true });
      await writeFile(path.join(dir, f), f);
    }
    return dir;
  }

  async function list(root: string, rel = ""): Promise<string[]> {
    const out: string[] = [];
    for (const e of await readdir(path.join(root, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) out.push(...(await list(root, child)));
      else out.push(child);
    }
    return out.sort();
  }

  const FILES = ["project.toml", "server.py", "spec/a_test.py", "src/app.py", "src/debug.log", "README.md"];

  it("exclude removes matching files and whole matching directories", async () => {
    const root = await app(FILES);
    const removed = await pruneAppDir(root, { exclude: ["spec/", "*.log"] });
    expect(removed.sort()).toEqual(["spec", "src/debug.log"]);
    expect(await list(root)).toEqual(["README.md", "project.toml", "server.py", "src/app.py"]);
  });

  it("include keeps only what matches (and project.toml), dropping emptied directories", async () => {
    const root = await app(FILES);
    await pruneAppDir(root, { include: ["src/", "server.py"] });
    expect(await list(root)).toEqual(["project.toml", "server.py", "src/app.py", "src/debug.log"]);
    await expect(stat(path.join(root, "spec"))).rejects.toThrow();
    expect(await readFile(path.join(root, "src/app.py"), "utf8")).toBe("src/app.py");
  });

  it("changes nothing without rules", async () => {
    const root = await app(FILES);
    expect(await pruneAppDir(root, {})).toEqual([]);
    expect(await list(root)).toEqual([...FILES].sort());
  });
});

describe("projectOrder", () => {
  const available = new Map(
    ["slipway/nodejs", "slipway/procfile", "me/inline"].map((id) => [id, { id, version: "0.1.0" }]),
  );
  const base = [
    {
      group: [
        { id: "slipway/nodejs", optional: true },
        { id: "slipway/procfile", optional: true },
      ],
    },
  ];

  it("keeps the order when the project names no groups", () => {
    expect(projectOrder(parseProjectToml(V02), available, base)).toBeUndefined();
  });

  it("replaces the order with the explicit group, none optional, pre/post around it", () => {
    const p = parseProjectToml(
      `${V02}[[io.buildpacks.group]]\nid = "slipway/procfile"\n[[io.buildpacks.post.group]]\nid = "me/inline"\n`,
    );
    expect(projectOrder(p, available, base)).toEqual([
      {
        group: [
          { id: "slipway/procfile", optional: false },
          { id: "me/inline", optional: false },
        ],
      },
    ]);
  });

  it("names the available ids when a group id is unknown, and the version on a mismatch", () => {
    const p = parseProjectToml(`${V02}[[io.buildpacks.group]]\nid = "heroku/ruby"\n`);
    expect(() => projectOrder(p, available, base)).toThrow(
      "project.toml: [[io.buildpacks.group]] id heroku/ruby is not a buildpack this platform has; available: me/inline, slipway/nodejs, slipway/procfile",
    );
    const v = parseProjectToml(`${V02}[[io.buildpacks.group]]\nid = "slipway/nodejs"\nversion = "9.9.9"\n`);
    expect(() => projectOrder(v, available, base)).toThrow(
      "version 9.9.9 is not available (this platform has 0.1.0)",
    );
  });
});

describe("writeInlineBuildpack", () => {
  it("writes a buildpack the lifecycle can load, with the script after the shell's #! line", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "slipway-inline-"));
    try {
      await writeInlineBuildpack(dir, {
        kind: "inline",
        id: "me/inline",
        version: "0.0.0",
        api: "0.10",
        shell: "/bin/bash",
        inline: 'echo "hi"',
      });
      const d = parseBuildpackToml(await readFile(path.join(dir, "buildpack.toml"), "utf8"), "x");
      expect(d).toMatchObject({ id: "me/inline", version: "0.0.0", api: "0.10" });
      expect(await readFile(path.join(dir, "bin/build"), "utf8")).toBe('#!/bin/bash\n\necho "hi"\n');
      expect((await stat(path.join(dir, "bin/build"))).mode & 0o111).toBe(0o111);
      expect(await readFile(path.join(dir, "bin/detect"), "utf8")).toBe("#!/bin/bash\nexit 0\n");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
