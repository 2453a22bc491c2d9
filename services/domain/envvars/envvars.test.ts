import { describe, expect, it } from "vitest";
import { MAX_VALUE_BYTES, maskValue, validateEnvName, validateEnvValue } from "./envvars.js";

describe("environment variable names", () => {
  it("accepts POSIX names in upper case", () => {
    for (const name of ["GREETING", "_PRIVATE", "DB_HOST_2", "A"]) expect(validateEnvName(name)).toBe(name);
  });

  it("rejects lower case with the upper-case name as a hint", () => {
    expect(() => validateEnvName("greeting")).toThrow(/did you mean GREETING\?/);
  });

  it("rejects names that are not POSIX names", () => {
    for (const name of ["", "1ABC", "A-B", "A B", "A=B", "ÄRGER", "X".repeat(129)]) {
      expect(() => validateEnvName(name), name).toThrow(/invalid environment variable name/);
    }
  });

  it("refuses the names the platform sets", () => {
    expect(() => validateEnvName("PORT")).toThrow(/PORT is set by Slipway/);
    for (const name of ["SLIPWAY_TOKEN", "CNB_APP_DIR", "TOOL_DATA_DIR"]) {
      expect(() => validateEnvName(name), name).toThrow(/reserved for the platform/);
    }
    expect(validateEnvName("PORTAL")).toBe("PORTAL");
  });
});

describe("environment variable values", () => {
  it("keeps any single line as it is, spaces and quotes included", () => {
    for (const v of ["", "  x  ", "a=b", `"'$HOME\``, "héllo ✓"]) expect(validateEnvValue("A", v)).toBe(v);
  });

  it("limits the size in bytes, not characters", () => {
    expect(validateEnvValue("A", "x".repeat(MAX_VALUE_BYTES))).toHaveLength(MAX_VALUE_BYTES);
    expect(() => validateEnvValue("A", "é".repeat(MAX_VALUE_BYTES / 2 + 1))).toThrow(/at most 32768 bytes/);
  });

  it("rejects line breaks and NUL with what to do instead", () => {
    expect(() => validateEnvValue("KEY", "-----BEGIN\nxyz")).toThrow(/line break.*base64/);
    expect(() => validateEnvValue("KEY", "a\rb")).toThrow(/line break/);
    expect(() => validateEnvValue("KEY", "a\0b")).toThrow(/NUL/);
  });
});

describe("masked values", () => {
  it("shows the first and last two characters of a value longer than 8, and its length", () => {
    expect(maskValue("postgres://u:hunter2@db/x")).toEqual({ masked: "po••••••••••••/x", length: 25 });
    expect(maskValue("abcdefghi")).toEqual({ masked: "ab•••••hi", length: 9 });
  });

  it("shows only bullets and the length of a value of 8 characters or fewer", () => {
    expect(maskValue("hunter22")).toEqual({ masked: "••••••••", length: 8 });
    expect(maskValue("hi")).toEqual({ masked: "••", length: 2 });
    expect(maskValue("")).toEqual({ masked: "", length: 0 });
  });

  it("counts characters, not UTF-16 units, so no character is cut in half", () => {
    expect(maskValue("😀😀secret-value😀😀")).toEqual({ masked: "😀😀••••••••••••😀😀", length: 16 });
  });
});
