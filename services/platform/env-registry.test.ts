import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./env.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "slipway-env-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("external registry config", () => {
  it("is absent by default: images go to the embedded registry", () => {
    expect(loadConfig({}, "/repo").registry).toBeUndefined();
  });

  it("reads a Harbor with its push account, the password from a file", async () => {
    const file = path.join(dir, "harbor-password");
    await writeFile(file, "from-a-file\n");
    const config = loadConfig(
      {
        SLIPWAY_REGISTRY_URL: "https://harbor.example.org/",
        SLIPWAY_REGISTRY_KIND: "harbor",
        SLIPWAY_REGISTRY_USERNAME: "robot$slipway",
        SLIPWAY_REGISTRY_PASSWORD_FILE: file,
      },
      "/repo",
    );
    expect(config.registry).toEqual({
      kind: "harbor",
      url: "https://harbor.example.org",
      host: "harbor.example.org",
      username: "robot$slipway",
      password: "from-a-file",
      pull: undefined,
    });
  });

  it("allows plain http only on loopback", () => {
    const base = { SLIPWAY_REGISTRY_USERNAME: "u", SLIPWAY_REGISTRY_PASSWORD: "p" };
    expect(
      loadConfig({ ...base, SLIPWAY_REGISTRY_URL: "http://127.0.0.1:5000" }, "/repo").registry?.host,
    ).toBe("127.0.0.1:5000");
    expect(() =>
      loadConfig({ ...base, SLIPWAY_REGISTRY_URL: "http://registry.example:5000" }, "/repo"),
    ).toThrow(/SLIPWAY_REGISTRY_URL: use https/);
  });

  it("reports every missing or contradictory setting at once", () => {
    let message = "";
    try {
      loadConfig(
        {
          SLIPWAY_REGISTRY_URL: "https://harbor.example.org",
          SLIPWAY_REGISTRY_KIND: "harbor",
          SLIPWAY_REGISTRY_PULL_USERNAME: "puller",
          SLIPWAY_REGISTRY_PASSWORD_FILE: path.join(dir, "missing"),
        },
        "/repo",
      );
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/SLIPWAY_REGISTRY_USERNAME: required/);
    expect(message).toMatch(/SLIPWAY_REGISTRY_PASSWORD_FILE: cannot read .*missing \(ENOENT\)/);
    expect(message).toMatch(/SLIPWAY_REGISTRY_PULL_USERNAME and SLIPWAY_REGISTRY_PULL_PASSWORD: set both/);
    expect(message).toMatch(/not used with Harbor/);
  });
});
