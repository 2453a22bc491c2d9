import { describe, expect, it } from "vitest";
import { loadConfig } from "./env.js";

describe("CLI config", () => {
  it("talks to SLIPWAY_HOST:SLIPWAY_PORT when SLIPWAY_URL is unset", () => {
    const config = loadConfig({ SLIPWAY_PORT: "9090" }, "/opt/slipway");
    expect(config.cli.url).toBe("http://127.0.0.1:9090");
    expect(config.cli.urlFrom).toBe("SLIPWAY_HOST/SLIPWAY_PORT");
    expect(loadConfig({ SLIPWAY_HOST: "::1", SLIPWAY_PORT: "9090" }).cli.url).toBe("http://[::1]:9090");
    expect(loadConfig({ SLIPWAY_HOST: "0.0.0.0" }).cli.url).toBe("http://127.0.0.1:8080");
  });

  it("SLIPWAY_URL wins", () => {
    const config = loadConfig({ SLIPWAY_URL: "https://slipway.example/", SLIPWAY_PORT: "9090" });
    expect(config.cli.url).toBe("https://slipway.example");
    expect(config.cli.urlFrom).toBe("SLIPWAY_URL");
  });

  it("keeps SLIPWAY_HOME in the checkout, whatever the working directory", () => {
    expect(loadConfig({}, "/opt/slipway").home).toBe("/opt/slipway/.slipway");
    expect(loadConfig({ SLIPWAY_HOME: "/var/lib/slipway" }, "/opt/slipway").home).toBe("/var/lib/slipway");
  });
});
