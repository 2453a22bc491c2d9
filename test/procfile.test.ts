import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";

// The procfile buildpack's parser is Python (it runs inside the build image); these tests run it with the host's python3.
const script = path.resolve(import.meta.dirname, "..", "buildpacks", "procfile", "lib", "procfile.py");

function procfile(text: string) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "procfile-"));
  writeFileSync(path.join(dir, "Procfile"), text);
  const r = spawnSync("python3", [script, "Procfile"], { cwd: dir, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("Procfile buildpack parser", () => {
  it("turns each line into a bash -c process, web is the default, keys are lowercased", () => {
    const r = procfile(
      "# comment\nweb: node server.js --port $PORT\n\nWorker_1:   python3 \"w.py\" 'x'\r\nrelease: ./migrate\n",
    );
    expect(r.code).toBe(0);
    expect(parse(r.stdout)).toEqual({
      processes: [
        { type: "web", command: ["bash", "-c"], args: ["node server.js --port $PORT"], default: true },
        { type: "worker-1", command: ["bash", "-c"], args: [`python3 "w.py" 'x'`], default: false },
        { type: "release", command: ["bash", "-c"], args: ["./migrate"], default: false },
      ],
    });
  });

  it("makes the only process the default, and a later duplicate wins", () => {
    const r = procfile("worker: a\nworker: b\n");
    expect(parse(r.stdout)).toEqual({
      processes: [{ type: "worker", command: ["bash", "-c"], args: ["b"], default: true }],
    });
  });

  it("rejects malformed lines with their line numbers", () => {
    const r = procfile("web: ok\nthis is not a process\nbad type!: x\n");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Procfile line 2: expected '<process type>: <command>'");
    expect(r.stderr).toContain("Procfile line 3");
    expect(r.stdout).toBe("");
  });

  it("keeps unicode and control characters valid TOML", () => {
    const r = procfile('web: echo "héllo 🚀" \\ \x7f\n');
    expect(r.code).toBe(0);
    expect(parse(r.stdout)).toMatchObject({ processes: [{ args: ['echo "héllo 🚀" \\ \x7f'] }] });
  });
});
