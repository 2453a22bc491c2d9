import { readFile, stat } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { renderEnvFile, withEnvFile } from "./env-file.js";

describe("podman env file", () => {
  it("writes NAME=value lines to a 0600 file that is gone afterwards", async () => {
    let seen = "";
    let mode = 0;
    const file = await withEnvFile({ A: " x = y ", PORT: "8000" }, async (f) => {
      seen = await readFile(f, "utf8");
      mode = (await stat(f)).mode & 0o777;
      return f;
    });
    expect(seen).toBe("A= x = y \nPORT=8000\n");
    expect(mode).toBe(0o600);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  it("removes the file when podman fails too", async () => {
    let file = "";
    await expect(
      withEnvFile({ A: "1" }, (f) => {
        file = f;
        return Promise.reject(new Error("podman failed"));
      }),
    ).rejects.toThrow("podman failed");
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  it("refuses what a line-based file cannot carry instead of splitting it", () => {
    expect(() => renderEnvFile({ A: "x\nB=injected" })).toThrow(/cannot be passed/);
    expect(() => renderEnvFile({ "A B": "x" })).toThrow(/cannot be passed/);
  });
});
