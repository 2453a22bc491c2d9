import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { applyEnvOps, envOpsFromFiles, envOpsToShell, layerPathOps, shellQuote } from "./env.js";

describe("env layer files", () => {
  it("maps suffixes to actions, uses .delim, and ignores invalid names and unknown suffixes", () => {
    const ops = envOpsFromFiles([
      { file: "PATH.prepend", content: "/a" },
      { file: "PATH.delim", content: ":" },
      { file: "JAVA_OPTS.append", content: "-Xmx1g" },
      { file: "JAVA_OPTS.delim", content: " " },
      { file: "NODE_ENV.default", content: "production" },
      { file: "FOO", content: "bar\n" },
      { file: "BAZ.override", content: "q" },
      { file: "BAD-NAME", content: "x" },
      { file: "X.weird", content: "x" },
    ]);
    expect(ops).toEqual([
      { name: "BAZ", action: "override", value: "q", delim: "" },
      { name: "FOO", action: "override", value: "bar\n", delim: "" },
      { name: "JAVA_OPTS", action: "append", value: "-Xmx1g", delim: " " },
      { name: "NODE_ENV", action: "default", value: "production", delim: "" },
      { name: "PATH", action: "prepend", value: "/a", delim: ":" },
    ]);
  });

  it("applies override, default, append and prepend to a concrete environment", () => {
    const env = applyEnvOps({ PATH: "/usr/bin", NODE_ENV: "test", EMPTY: "" }, [
      { name: "PATH", action: "prepend", value: "/layer/bin", delim: ":" },
      { name: "PATH", action: "append", value: "/tail", delim: ":" },
      { name: "NODE_ENV", action: "default", value: "production", delim: "" },
      { name: "EMPTY", action: "default", value: "filled", delim: "" },
      { name: "NEW", action: "append", value: "x", delim: ":" },
      { name: "CAT", action: "append", value: "a", delim: "" },
      { name: "CAT", action: "append", value: "b", delim: "" },
    ]);
    expect(env).toEqual({
      PATH: "/layer/bin:/usr/bin:/tail",
      NODE_ENV: "test",
      EMPTY: "filled",
      NEW: "x",
      CAT: "ab",
    });
  });

  it("maps bin and lib to PATH and LD_LIBRARY_PATH, and more at build time", () => {
    const present = new Set(["bin", "lib", "include"]);
    expect(layerPathOps("/layers/x/l", present, "launch").map((o) => `${o.name}=${o.value}`)).toEqual([
      "PATH=/layers/x/l/bin",
      "LD_LIBRARY_PATH=/layers/x/l/lib",
    ]);
    expect(layerPathOps("/layers/x/l", present, "build").map((o) => o.name)).toEqual([
      "PATH",
      "LD_LIBRARY_PATH",
      "LIBRARY_PATH",
      "CPATH",
    ]);
  });

  it("renders shell that gives the same result as the TypeScript rules, whatever the values contain", () => {
    const tricky = `it's "quoted" $HOME \`date\` \\ ; rm -rf /`;
    const ops = [
      { name: "PATH", action: "prepend", value: "/l/bin", delim: ":" },
      { name: "APPENDED", action: "append", value: "b'c", delim: " " },
      { name: "UNSET_APPEND", action: "append", value: "only", delim: ":" },
      { name: "TRICKY", action: "override", value: tricky, delim: "" },
      { name: "KEEP", action: "default", value: "nope", delim: "" },
      { name: "FILL", action: "default", value: "yes", delim: "" },
    ] as const;
    const start = { PATH: "/usr/bin:/bin", APPENDED: "a", KEEP: "kept" };
    const script = `${envOpsToShell(ops)}for v in PATH APPENDED UNSET_APPEND TRICKY KEEP FILL; do eval "printf '%s\\0' \\"\\$$v\\""; done`;
    const out = execFileSync("/bin/sh", ["-c", script], { env: start })
      .toString("utf8")
      .split("\0")
      .slice(0, 6);
    const expected = applyEnvOps(start, ops);
    expect(out).toEqual(
      ["PATH", "APPENDED", "UNSET_APPEND", "TRICKY", "KEEP", "FILL"].map((k) => expected[k]),
    );
    expect(expected.TRICKY).toBe(tricky);
  });

  it("quotes single quotes for sh", () => {
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
  });
});
