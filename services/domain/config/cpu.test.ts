import { describe, expect, it } from "vitest";
import { InputError } from "../../platform/errors.js";
import { cpus } from "./cpu.js";

describe("cpus", () => {
  it("reads millicores, decimals and whole numbers as CPUs", () => {
    expect(cpus("500m")).toBe(0.5);
    expect(cpus("100m")).toBe(0.1);
    expect(cpus("0.25")).toBe(0.25);
    expect(cpus("2")).toBe(2);
    expect(cpus(1.5)).toBe(1.5);
  });

  it("refuses what podman could not take", () => {
    for (const bad of ["0", "0m", "0.0001", "half", "1.5m", "-1", ""]) {
      expect(() => cpus(bad), bad).toThrow(InputError);
    }
  });
});
