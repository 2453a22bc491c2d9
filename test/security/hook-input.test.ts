import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { httpAppWithTool } from "../helpers/http-app.js";

/**
 * What a hostile tool owner can put in a GitLab push hook signed with their own tool's secret: a source
 * URL on loopback or the private network, on Slipway itself, or disguised with whitespace; a body in
 * another encoding. Each is refused at the door with a reason, and nothing is queued.
 */
const pushHook = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "../fixtures/gitlab/gitlab-push-hook.docs.json"), "utf8"),
) as { project: Record<string, unknown> } & Record<string, unknown>;

const file = httpAppWithTool("hostile");

/** A push of a commit never seen before, so that only the URL decides the answer. */
function hookWith(gitHttpUrl: string) {
  const sha = randomBytes(20).toString("hex");
  return {
    ...pushHook,
    after: sha,
    checkout_sha: sha,
    project: { ...pushHook.project, git_http_url: gitHttpUrl },
  };
}

async function send(body: string | Buffer, contentType = "application/json") {
  const res = await fetch(`${file.app.url}/hooks/gitlab/${file.tool.name}`, {
    method: "POST",
    headers: {
      "content-type": contentType,
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": file.tool.webhook_secret,
    },
    body,
  });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}

async function builds() {
  return (await file.app.store.listBuilds(file.tool.name, 100)).length;
}

describe("a push hook's git_http_url", () => {
  it.each([
    ["Redis on IPv6 loopback", "http://[::1]:6379/x.git", "[::1]:6379 is a loopback address"],
    ["the API on IPv4 loopback", "http://127.0.0.1:8081/x.git", "127.0.0.1:8081 is a loopback address"],
    ["loopback by name", "http://localhost:5080/v2/x.git", "localhost:5080 is a loopback address"],
    ["loopback as a decimal number", "http://2130706433/x.git", "127.0.0.1 is a loopback address"],
    ["cloud metadata", "http://169.254.169.254/latest.git", "169.254.169.254 is a link-local address"],
    ["the private network", "https://10.0.0.7/group/x.git", "10.0.0.7 is a private address"],
    ["IPv4 hidden in IPv6", "http://[::ffff:127.0.0.1]:6379/x.git", "is an IPv4-mapped address"],
  ])("is refused when it points at %s", async (_what, url, reason) => {
    const before = await builds();
    const res = await send(JSON.stringify(hookWith(url)));
    expect(res.status).toBe(400);
    expect(res.body.error?.message).toContain(reason);
    expect(res.body.error?.message).toContain("SLIPWAY_SOURCE_ALLOW_HOSTS");
    expect(await builds()).toBe(before);
  });

  it("is refused when it names another tool's repository on Slipway itself", async () => {
    // startHttpApp's public URL is http://127.0.0.1:8080.
    const res = await send(JSON.stringify(hookWith("http://127.0.0.1:8080/git/victim.git")));
    expect(res.status).toBe(400);
    expect(res.body.error?.message).toContain("is on this Slipway itself");
    expect(await builds()).toBe(0);
  });

  it.each([
    ["leading whitespace", " http://example.com/mike/diaspora.git"],
    ["trailing whitespace", "http://example.com/mike/diaspora.git\n"],
    ["a tab inside", "http://exam\tple.com/mike/diaspora.git"],
  ])("is refused with %s, which the URL parser would drop", async (_what, url) => {
    const res = await send(JSON.stringify(hookWith(url)));
    expect(res.status).toBe(400);
    expect(res.body.error?.message).toContain(
      "project.git_http_url: must not contain whitespace or control characters",
    );
    expect(await builds()).toBe(0);
  });

  it("is accepted when it is a public repository", async () => {
    const res = await send(JSON.stringify(hookWith("http://example.com/mike/diaspora.git")));
    expect(res.status).toBe(202);
  });
});

describe("a push hook's encoding", () => {
  it("is refused with 415 when the body says it is UTF-16, instead of being read as UTF-8", async () => {
    const text = JSON.stringify(hookWith("http://example.com/mike/diaspora.git"));
    const before = await builds();
    for (const body of [Buffer.from(text, "utf16le"), Buffer.from(text, "utf8")]) {
      const res = await send(body, "application/json; charset=utf-16");
      expect(res.status).toBe(415);
      expect(res.body.error).toEqual({
        code: "unsupported_media_type",
        message: "GitLab webhooks must be UTF-8 JSON; this one says charset=utf-16",
      });
    }
    expect(await builds()).toBe(before);
  });

  it("is accepted when it says UTF-8", async () => {
    const res = await send(
      JSON.stringify(hookWith("http://example.com/mike/diaspora.git")),
      'application/json; charset="UTF-8"',
    );
    expect(res.status).toBe(202);
  });
});

describe("tool names", () => {
  it.each([
    "admin",
    "api",
    "www",
    "localhost",
    "git",
    "hooks",
    "ui",
    "con",
    "nul",
    "prn",
    "aux",
    "com1",
    "lpt9",
  ])("refuses to create a tool named %s", async (name) => {
    const res = await fetch(`${file.app.url}/api/v1/tools`, {
      method: "POST",
      headers: { authorization: `Bearer ${file.app.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toContain(`the tool name "${name}" is reserved`);
    expect(await file.app.store.getTool(name)).toBeUndefined();
  });

  it("still creates a tool whose name only contains a reserved word", async () => {
    const res = await fetch(`${file.app.url}/api/v1/tools`, {
      method: "POST",
      headers: { authorization: `Bearer ${file.app.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "api-docs" }),
    });
    expect(res.status).toBe(201);
  });
});
