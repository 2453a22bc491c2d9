import { describe, expect, it } from "vitest";
import { boundedName } from "./names.js";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

describe("boundedName", () => {
  it("keeps names that fit", () => {
    expect(boundedName("web")).toBe("web");
    expect(boundedName("a".repeat(63))).toBe("a".repeat(63));
  });

  it("shortens long names to the limit with a hash of the whole name", () => {
    const long = `${"a".repeat(60)}-one`;
    const other = `${"a".repeat(60)}-two`;
    const a = boundedName(long);
    const b = boundedName(other);
    expect(a).toHaveLength(63);
    expect(a).toMatch(DNS_LABEL);
    expect(a).not.toBe(b);
    expect(boundedName(long)).toBe(a);
    expect(boundedName(long, 52).length).toBeLessThanOrEqual(52);
  });

  it("never leaves a '-' before the hash run into another '-'", () => {
    const name = boundedName(`${"a".repeat(53)}-${"b".repeat(20)}`);
    expect(name).toMatch(DNS_LABEL);
    expect(name).not.toContain("--");
  });
});
