import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../../test/fakes/memory-store.js";
import { CryptoBox } from "../../platform/crypto-box.js";
import { hashSecret } from "../../platform/secrets.js";
import { ToolService } from "./tool-service.js";

// Creating tools and checking their secrets, on the in-memory store.
const service = (store = new MemoryStore()) =>
  new ToolService(store, { publicUrl: "https://slipway.example", webUrl: (t) => `https://${t}.example/` });

describe("tools create", () => {
  it("shows the secrets once and stores only their hashes", async () => {
    const store = new MemoryStore();
    const created = await service(store).create("my-tool");
    expect(created).toMatchObject({
      name: "my-tool",
      git_url: "https://slipway.example/git/my-tool.git",
      webhook_url: "https://slipway.example/hooks/gitlab/my-tool",
      web_url: "https://my-tool.example/",
    });
    const stored = JSON.stringify(await store.getTool("my-tool"));
    for (const secret of [created.token, created.webhook_secret]) expect(stored).not.toContain(secret);
    expect(await store.toolBySecretHash(hashSecret(created.token))).toEqual({
      tool: "my-tool",
      kind: "token",
    });
  });

  it("refuses a second tool of the same name, and reserved or invalid names, saying what to change", async () => {
    const tools = service();
    await tools.create("dup");
    await expect(tools.create("dup")).rejects.toMatchObject({
      code: "conflict",
      message: 'a tool named "dup" already exists',
    });
    await expect(tools.create("admin")).rejects.toThrow(
      /^the tool name "admin" is reserved: .* e\.g\. "admin-tool"/,
    );
    await expect(tools.create("Bad_Name")).rejects.toThrow(
      /^invalid tool name "Bad_Name": use 1-52 lowercase/,
    );
  });

  it("accepts the tool's own token and webhook secret only", async () => {
    const tools = service();
    const a = await tools.create("a");
    const b = await tools.create("b");
    expect(await tools.checkToken("a", a.token)).toBe(true);
    expect(await tools.checkToken("a", b.token)).toBe(false);
    expect(await tools.checkToken("nobody", a.token)).toBe(false);
    expect((await tools.checkWebhookSecret("a", a.webhook_secret))?.name).toBe("a");
    expect(await tools.checkWebhookSecret("a", a.token)).toBeUndefined();
    await expect(tools.get("nobody")).rejects.toMatchObject({ code: "not_found" });
  });
});

describe("tools rotate", () => {
  it("replaces a leaked token: the old one stops working, the new one works, other secrets are kept", async () => {
    const tools = service();
    const created = await tools.create("leaky");
    const rotated = await tools.rotate("leaky", "token");
    expect(rotated).toEqual({ name: "leaky", token: expect.stringMatching(/^slp/) });
    if (!("token" in rotated)) throw new Error("no token shown");
    expect(await tools.checkToken("leaky", created.token)).toBe(false);
    expect(await tools.checkToken("leaky", rotated.token)).toBe(true);
    expect((await tools.checkWebhookSecret("leaky", created.webhook_secret))?.name).toBe("leaky");
  });

  it("replaces the webhook secret, sealed too, so signed deliveries check against the new one only", async () => {
    const tools = new ToolService(
      new MemoryStore(),
      { publicUrl: "https://slipway.example", webUrl: (t) => `https://${t}.example/` },
      CryptoBox.fromKey(randomBytes(32)),
    );
    const created = await tools.create("hooked");
    const rotated = await tools.rotate("hooked", "webhook-secret");
    if (!("webhook_secret" in rotated)) throw new Error("no webhook secret shown");
    expect(rotated.webhook_url).toBe("https://slipway.example/hooks/gitlab/hooked");
    expect(await tools.checkWebhookSecret("hooked", created.webhook_secret)).toBeUndefined();
    expect((await tools.checkWebhookSecret("hooked", rotated.webhook_secret))?.name).toBe("hooked");
    const body = Buffer.from('{"ref":"refs/heads/main"}');
    const sign = (secret: string) => createHmac("sha256", secret).update(body).digest("hex");
    const tool = await tools.get("hooked");
    expect(tools.matchWebhookSignature(tool, body, sign(rotated.webhook_secret))?.name).toBe("hooked");
    expect(tools.matchWebhookSignature(tool, body, sign(created.webhook_secret))).toBeUndefined();
  });

  it("replaces the redeploy URL: only the new URL's token redeploys", async () => {
    const tools = service();
    const created = await tools.create("redeployed");
    const rotated = await tools.rotate("redeployed", "redeploy-url");
    if (!("redeploy_url" in rotated)) throw new Error("no redeploy URL shown");
    const tokenOf = (url: string) => new URL(url).searchParams.get("token") ?? undefined;
    expect(rotated.redeploy_url).toMatch(/^https:\/\/slipway\.example\/hooks\/redeploy\/redeployed\?token=/);
    expect(await tools.checkRedeployToken("redeployed", tokenOf(created.redeploy_url))).toBeUndefined();
    expect((await tools.checkRedeployToken("redeployed", tokenOf(rotated.redeploy_url)))?.name).toBe(
      "redeployed",
    );
  });

  it("says so for a tool that does not exist", async () => {
    await expect(service().rotate("nobody", "token")).rejects.toMatchObject({ code: "not_found" });
  });
});
