import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { mergeProcesses, parseLaunchToml, renderCnbScripts } from "./launch.js";
import type { ProcessType } from "./types.js";

describe("launch.toml", () => {
  it("parses processes and labels", () => {
    const launch = parseLaunchToml(
      [
        "[[labels]]",
        'key = "org.example"',
        'value = "1"',
        "[[processes]]",
        'type = "web"',
        'command = ["node"]',
        'args = ["server.js"]',
        "default = true",
        'working-dir = "/workspace/app"',
      ].join("\n"),
      "test",
    );
    expect(launch).toEqual({
      labels: [{ key: "org.example", value: "1" }],
      processes: [
        { type: "web", command: ["node"], args: ["server.js"], default: true, workingDir: "/workspace/app" },
      ],
    });
  });

  it("rejects a process without a command or with a bad type, naming the source", () => {
    expect(() => parseLaunchToml('[[processes]]\ntype = "web"\n', "slipway/x launch.toml")).toThrow(
      /slipway\/x launch.toml: processes\[0\] \(web\): command/,
    );
    expect(() => parseLaunchToml('[[processes]]\ntype = "a b"\ncommand = ["x"]\n', "l")).toThrow(
      /type must match/,
    );
  });

  it("lets later buildpacks override a type, and the last default win", () => {
    const p = (type: string, cmd: string, def = false) => ({ type, command: [cmd], args: [], default: def });
    const merged = mergeProcesses([
      {
        buildpackId: "node",
        launch: { labels: [], processes: [p("web", "npm", true), p("worker", "node")] },
      },
      {
        buildpackId: "procfile",
        launch: { labels: [], processes: [p("web", "bash", false), p("release", "bash")] },
      },
      { buildpackId: "late", launch: { labels: [], processes: [p("worker", "py", true)] } },
    ]);
    expect(merged.map((m) => [m.type, m.command[0], m.default, m.buildpackId])).toEqual([
      ["web", "bash", false, "procfile"],
      ["release", "bash", false, "procfile"],
      ["worker", "py", true, "late"],
    ]);
  });
});

describe("/cnb scripts", () => {
  function render(processes: ProcessType[]) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cnb-"));
    const layer = path.join(dir, "layer");
    mkdirSync(path.join(layer, "bin"), { recursive: true });
    writeFileSync(
      path.join(layer, "bin", "hello"),
      '#!/bin/sh\necho "hello $GREETING from $(pwd) args:$*"\n',
    );
    chmodSync(path.join(layer, "bin", "hello"), 0o755);
    const scripts = renderCnbScripts({
      appDir: dir,
      layersDir: "/layers",
      processes,
      layers: [
        {
          imagePath: layer,
          dirs: new Set(["bin"]),
          env: [{ file: "GREETING.default", content: "world" }],
          envLaunch: [],
          envProcess: new Map([["web", [{ file: "GREETING.override", content: "web's" }]]]),
        },
      ],
    });
    // The scripts refer to /cnb; run them with that prefix rewritten to the temp dir.
    for (const [rel, content] of scripts.files) {
      const file = path.join(dir, "cnb", rel);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, content.replaceAll("/cnb/", `${dir}/cnb/`));
      chmodSync(file, 0o755);
    }
    const sh = (file: string, args: string[] = []) =>
      execFileSync(path.join(dir, "cnb", file), args, { env: { PATH: "/usr/bin:/bin" }, cwd: "/" })
        .toString()
        .trim();
    return { dir, sh, scripts };
  }

  const web: ProcessType = {
    type: "web",
    command: ["hello"],
    args: ["a b", "it's"],
    default: true,
    buildpackId: "x",
  };
  const shell: ProcessType = {
    type: "worker",
    command: ["bash", "-c"],
    args: ['echo "$GREETING" && hello x'],
    default: false,
    buildpackId: "p",
  };

  it("process scripts apply the launch env, cd to the app, and run with default or given args", () => {
    const { dir, sh } = render([web, shell]);
    expect(sh("process/web")).toBe(`hello web's from ${dir} args:a b it's`);
    expect(sh("process/web", ["other"])).toBe(`hello web's from ${dir} args:other`);
    expect(sh("process/worker")).toBe(`world\nhello world from ${dir} args:x`);
  });

  it("the launcher runs any command in the launch env, a single command line through the shell, and the default without arguments", () => {
    const { dir, sh } = render([web, shell]);
    expect(sh("lifecycle/launcher", ["hello", "1"])).toBe(`hello world from ${dir} args:1`);
    expect(sh("lifecycle/launcher", ["--", "hello"])).toBe(`hello world from ${dir} args:`);
    expect(sh("lifecycle/launcher", ["hello 2 && echo done"])).toBe(`hello world from ${dir} args:2\ndone`);
    expect(sh("lifecycle/launcher")).toBe(`hello web's from ${dir} args:a b it's`);
  });

  it("the env script only exports variables", () => {
    const { dir } = render([web]);
    const env = readFileSync(path.join(dir, "cnb", "lifecycle", "env"), "utf8");
    expect(env).toContain("export CNB_APP_DIR=");
    expect(env).toContain(`if [ -z "\${GREETING:-}" ]; then export GREETING='world'; fi`);
  });
});
