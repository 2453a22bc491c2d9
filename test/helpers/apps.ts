import { cp, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { run } from "../../services/platform/process.js";

/** A git work tree in a temp dir with `files` committed on `main`. */
/** A git work tree on main with `files` committed (over a copy of `copyFrom`, a fixture app, if given). */
export async function gitRepo(
  files: Record<string, string>,
  copyFrom?: string,
): Promise<{ dir: string; commit: (files: Record<string, string>, msg: string) => Promise<string> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-app-"));
  if (copyFrom) await cp(copyFrom, dir, { recursive: true });
  await git(dir, ["init", "-q", "-b", "main"]);
  const commit = async (changed: Record<string, string>, msg: string) => {
    for (const [name, content] of Object.entries(changed)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), content);
    }
    await git(dir, ["add", "-A"]);
    await git(dir, ["commit", "-q", "-m", msg]);
    return (await git(dir, ["rev-parse", "HEAD"])).trim();
  };
  await commit(files, "initial");
  return { dir, commit };
}

export async function git(cwd: string, args: string[]): Promise<string> {
  const res = await run("git", args, {
    cwd,
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "Maintainer",
      GIT_AUTHOR_EMAIL: "m@example.org",
      GIT_COMMITTER_NAME: "Maintainer",
      GIT_COMMITTER_EMAIL: "m@example.org",
      GIT_TERMINAL_PROMPT: "0",
    },
  });
  return res.stdout + res.stderr;
}

/** A Node app with one npm dependency and a real lockfile, answering `message` on every path. */
export async function nodeApp(message: string): Promise<Record<string, string>> {
  const pkg = {
    name: "hello",
    version: "1.0.0",
    private: true,
    scripts: { start: "node server.js" },
    engines: { node: "22" },
    // is-odd requires is-number: a dependency with a dependency of its own, as real apps have.
    dependencies: { "is-odd": "3.0.1" },
  };
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-lock-"));
  await writeFile(path.join(dir, "package.json"), JSON.stringify(pkg, null, 2));
  await run("npm", ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: dir,
  });
  const { readFile } = await import("node:fs/promises");
  return {
    "package.json": JSON.stringify(pkg, null, 2),
    "package-lock.json": await readFile(path.join(dir, "package-lock.json"), "utf8"),
    "server.js": serverJs(message),
  };
}

export function serverJs(message: string): string {
  return `const http = require("http");
const isOdd = require("is-odd");
http.createServer((req, res) => res.end(${JSON.stringify(message)} + (isOdd(1) ? "" : "!"))).listen(process.env.PORT);
`;
}

export function pythonApp(message: string): Record<string, string> {
  return { "app.py": pythonServer(`200, ${JSON.stringify(message)}.encode()`) };
}

/**
 * A standard-library Python web server on $PORT. `answer` is a Python expression for `(status, body
 * bytes)` of a GET (`self.path` is the path); `preamble` runs once at start.
 */
export function pythonServer(answer: string, preamble = ""): string {
  return `import http.server, os
${preamble}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = ${answer}
        self.send_response(code)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
`;
}

/** GET through Slipway's front proxy as a browser visiting http://<tool>.localhost would. */
export function viaProxy(
  port: number,
  tool: string,
  urlPath = "/",
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: urlPath, headers: { host: `${tool}.localhost:${port}` } },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("timeout")));
  });
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
  everyMs = 300,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
