import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../../test/fakes/memory-store.js";
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
