import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hookSecretMatches, installHooks, parseHookPayload } from "./hook.js";

const A = "a".repeat(40);
const B = "b".repeat(40);
const Z = "0".repeat(40);

describe("parseHookPayload", () => {
  it("parses git's post-receive lines", () => {
    expect(parseHookPayload(`${Z} ${A} refs/heads/main\n${A} ${B} refs/tags/v1.0\r\n\n`)).toEqual([
      { old: Z, new: A, ref: "refs/heads/main" },
      { old: A, new: B, ref: "refs/tags/v1.0" },
    ]);
  });

  it("accepts SHA-256 object ids", () => {
    const long = "c".repeat(64);
    expect(parseHookPayload(`${Z}${"0".repeat(24)} ${long} refs/heads/x`)).toHaveLength(1);
  });

  it("is empty for an empty push", () => {
    expect(parseHookPayload("")).toEqual([]);
  });

  it.each([
    `${A} ${B}`,
    `${A} ${B} main`,
    `${A.slice(1)} ${B} refs/heads/main`,
    `${A} ${B} refs/heads/a b`,
    `${A} ${B} refs/heads/../../etc`,
    `${A.toUpperCase()} ${B} refs/heads/main`,
  ])("rejects %j", (line) => {
    expect(() => parseHookPayload(line)).toThrow(expect.objectContaining({ code: "invalid_input" }));
  });
});

describe("hookSecretMatches", () => {
  it("matches only the exact secret, whatever the lengths", () => {
    expect(hookSecretMatches("s3cret", "s3cret")).toBe(true);
    expect(hookSecretMatches("s3cre", "s3cret")).toBe(false);
    expect(hookSecretMatches("s3cret-and-more", "s3cret")).toBe(false);
    expect(hookSecretMatches(undefined, "s3cret")).toBe(false);
    expect(hookSecretMatches("", "s3cret")).toBe(false);
  });
});

/**
 * The installed post-receive script itself, run by sh as git runs it, against a small HTTP server:
 * what the pusher sees for each answer the server can give.
 */
describe("post-receive", () => {
  let dir: string;
  let server: Server;
  let url: string;
  const seen: { headers: IncomingHttpHeaders; body: string }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "slipway-hook-"));
    await mkdir(path.join(dir, "hooks"));
    await installHooks(dir);
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
      req.on("end", () => {
        seen.push({ headers: req.headers, body });
        const json = (status: number, code: string, message: string) =>
          res
            .writeHead(status, { "content-type": "application/json" })
            .end(JSON.stringify({ error: { code, message } }));
        if (!hookSecretMatches(String(req.headers["x-slipway-hook-secret"]), "s3cret"))
          json(401, "unauthorized", "invalid git hook secret");
        else if (body.includes("refs/heads/odd"))
          json(400, "invalid_input", 'invalid ref name "a\\b" (see `git check-ref-format`)');
        else
          res
            .writeHead(200, { "content-type": "text/plain" })
            .end("slipway: build 01J queued\nslipway: follow it\n");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/internal/git-hook`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs the hook as git does: the ref lines on stdin, its environment from the CGI. */
  async function hook(
    stdin: string,
    env: Record<string, string>,
  ): Promise<{ stdout: string; status: number | null }> {
    const child = spawn("sh", [path.join(dir, "hooks", "post-receive")], {
      env: { PATH: "/usr/bin:/bin", ...env },
      stdio: ["pipe", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stdin.end(stdin);
    const [status] = (await once(child, "close")) as [number | null];
    return { stdout, status };
  }

  const env = { SLIPWAY_HOOK_URL: "", SLIPWAY_HOOK_SECRET: "s3cret", SLIPWAY_TOOL: "mytool" };
  const line = `${Z} ${A} refs/heads/main\n`;

  it("posts the refs with the tool and secret as headers and prints the server's answer", async () => {
    const r = await hook(line, { ...env, SLIPWAY_HOOK_URL: url });
    expect(r).toEqual({ stdout: "slipway: build 01J queued\nslipway: follow it\n", status: 0 });
    const last = seen.at(-1)!;
    expect(last.body).toBe(line);
    expect(last.headers).toMatchObject({ "x-slipway-tool": "mytool", "content-type": "text/plain" });
  });

  it("shows the message of a refusal as the server wrote it, quotes and backslashes included", async () => {
    const r = await hook(`${Z} ${A} refs/heads/odd\n`, { ...env, SLIPWAY_HOOK_URL: url });
    expect(r.stdout).toBe(
      'slipway: the push was stored but no build was started: invalid ref name "a\\b" (see `git check-ref-format`)\n',
    );
    expect(r.status).toBe(0);
    expect((await hook(line, { ...env, SLIPWAY_HOOK_URL: url, SLIPWAY_HOOK_SECRET: "wrong" })).stdout).toBe(
      "slipway: the push was stored but no build was started: invalid git hook secret\n",
    );
  });

  it("says how to start the build when the server cannot be reached or the hook was not given one", async () => {
    const closed = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const port = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(port));
      });
    });
    const down = await hook(line, {
      ...env,
      SLIPWAY_HOOK_URL: `http://127.0.0.1:${closed}/internal/git-hook`,
    });
    expect(down.status).toBe(0);
    expect(down.stdout).toMatch(
      /^slipway: the push was stored but Slipway could not be reached \(curl: \(7\) [^\n]*\); start a build with: slipway build start --tool mytool\n$/,
    );
    expect(await hook(line, { SLIPWAY_TOOL: "mytool" })).toEqual({
      stdout:
        "slipway: the push was stored but not handed to Slipway; start a build with: slipway build start --tool mytool\n",
      status: 0,
    });
  });
});
