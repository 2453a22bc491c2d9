import { describe, expect, it } from "vitest";
import { BUILDER_USER, sourceAccess } from "./source-access.js";

const access = sourceAccess({
  publicUrl: "http://slipway.example:8080",
  builderSecret: "s".repeat(64),
  linkedAuth: (tool) =>
    Promise.resolve(tool === "linked" ? { username: "deploy-token", password: "gl-token" } : undefined),
});

describe("sourceAccess.plan", () => {
  it("fetches a tool's own repository with the builder's credential for that tool", async () => {
    const plan = await access.plan("http://slipway.example:8080/git/hello.git", undefined, "hello");
    expect(plan.own).toBe(true);
    expect(plan.auth?.username).toBe(BUILDER_USER);
  });

  it("refuses another tool's repository on this Slipway", async () => {
    await expect(
      access.plan("http://slipway.example:8080/git/other.git", undefined, "hello"),
    ).rejects.toThrow(/not tool hello's own repository/);
  });

  it("takes the credential in an outside URL's user-info (what the fetch Task's git is given)", async () => {
    const plan = await access.plan("http://reader:p%40ss@gitlab.example/group/app.git", undefined, "hello");
    expect(plan).toEqual({ own: false, auth: { username: "reader", password: "p@ss" } });
  });

  it("prefers the credentials given, then the URL's, then the linked project's deploy token", async () => {
    const given = { username: "given", password: "pw" };
    expect((await access.plan("http://u:p@gitlab.example/a.git", given, "linked")).auth).toEqual(given);
    expect((await access.plan("http://u:p@gitlab.example/a.git", undefined, "linked")).auth).toEqual({
      username: "u",
      password: "p",
    });
    expect((await access.plan("http://gitlab.example/a.git", undefined, "linked")).auth).toEqual({
      username: "deploy-token",
      password: "gl-token",
    });
    expect((await access.plan("http://gitlab.example/a.git", undefined, "hello")).auth).toBeUndefined();
  });
});
