import { describe, expect, it } from "vitest";
import { isValidBranchName, isValidRefName } from "./ref-name.js";

describe("isValidRefName", () => {
  it.each([
    "refs/heads/main",
    "refs/tags/v1.2.3",
    "refs/heads/feature/x-1",
    "refs/heads/ünïcode",
    "refs/heads/a.b",
  ])("accepts %s", (ref) => expect(isValidRefName(ref)).toBe(true));
  it.each([
    "",
    "refs/heads/../../etc/passwd",
    "refs/heads/.hidden",
    "refs/heads/main.lock",
    "refs/heads/a b",
    "refs/heads/mas\u0000ter",
    "refs/heads/\u001b[31m",
    "refs/heads/a~1",
    "refs/heads/a^",
    "refs/heads/a:b",
    "refs/heads/a?",
    "refs/heads/a*",
    "refs/heads/a[",
    "refs/heads/a\\b",
    "refs/heads/@{-1}",
    "refs/heads/a//b",
    "refs/heads/a/",
    "refs/heads/a.",
    "-refs/heads/x",
    "/refs/heads/x",
    "@",
  ])("rejects %j", (ref) => expect(isValidRefName(ref)).toBe(false));
  it("checks branch names the same way", () => {
    expect(isValidBranchName("main")).toBe(true);
    expect(isValidBranchName("../main")).toBe(false);
  });
});
