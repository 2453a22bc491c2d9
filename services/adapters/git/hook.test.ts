import { describe, expect, it } from "vitest";
import { hookSecretMatches, parseHookPayload } from "./hook.js";

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
