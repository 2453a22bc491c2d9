import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./env.js";

describe("notification mail settings", () => {
  it("no SMTP URL: mail is off", () => {
    expect(loadConfig({}, "/repo").smtp).toBeUndefined();
  });

  it("an SMTP URL turns it on, from SLIPWAY_SMTP_FROM or an address on the public host", () => {
    expect(
      loadConfig(
        { SLIPWAY_SMTP_URL: "smtp://u:p@mail.example.org:587", SLIPWAY_SMTP_FROM: "ci@example.org" },
        "/repo",
      ).smtp,
    ).toEqual({ url: "smtp://u:p@mail.example.org:587", from: "ci@example.org" });
    expect(
      loadConfig(
        { SLIPWAY_SMTP_URL: "smtps://mail.example.org", SLIPWAY_PUBLIC_URL: "https://slipway.example.org/" },
        "/repo",
      ).smtp?.from,
    ).toBe("slipway@slipway.example.org");
  });

  it("a URL that is not smtp(s) and a bad sender are reported together", () => {
    let message = "";
    try {
      loadConfig({ SLIPWAY_SMTP_URL: "http://mail.example.org", SLIPWAY_SMTP_FROM: "nobody" }, "/repo");
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toContain("SLIPWAY_SMTP_URL: an SMTP URL");
    expect(message).toContain("SLIPWAY_SMTP_FROM");
  });
});
