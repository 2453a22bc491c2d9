import { describe, expect, it } from "vitest";
import {
  emailsPolicyOf,
  redact,
  tailOf,
  validateAddress,
  validateWebhookUrl,
  wantsJobMail,
} from "./policy.js";

describe("job emails policy", () => {
  it("follows Toolforge's none|all|onfinish|onfailure for ended runs", () => {
    expect(wantsJobMail("none", "failed")).toBe(false);
    expect(wantsJobMail("onfailure", "failed")).toBe(true);
    expect(wantsJobMail("onfailure", "timeout")).toBe(true);
    expect(wantsJobMail("onfailure", "lost")).toBe(true);
    expect(wantsJobMail("onfailure", "succeeded")).toBe(false);
    expect(wantsJobMail("onfinish", "succeeded")).toBe(true);
    expect(wantsJobMail("all", "failed")).toBe(true);
    // Stopped by the maintainer or skipped: never mailed.
    expect(wantsJobMail("all", "stopped")).toBe(false);
    expect(wantsJobMail("all", "skipped")).toBe(false);
  });

  it("reads the policy from a job's extra keys; anything else is none", () => {
    expect(emailsPolicyOf({ emails: "onfailure" })).toBe("onfailure");
    expect(emailsPolicyOf({ emails: "sometimes" })).toBe("none");
    expect(emailsPolicyOf({})).toBe("none");
    expect(emailsPolicyOf(undefined)).toBe("none");
  });
});

describe("addresses and URLs", () => {
  it("takes one plain address, lower-cased so one person is one recipient", () => {
    expect(validateAddress(" Ada@Example.ORG ")).toBe("ada@example.org");
    for (const bad of [
      "",
      "ada",
      "ada@",
      "@example.org",
      "a b@example.org",
      "a@b.org, c@d.org",
      "a@b.org\r\nBcc: x@y.org",
      "Ada <ada@example.org>",
      7,
    ])
      expect(() => validateAddress(bad), String(bad)).toThrow(/invalid email address/);
  });

  it("takes http(s) webhook URLs without credentials", () => {
    expect(validateWebhookUrl("https://chat.example.org/hooks/1")).toBe("https://chat.example.org/hooks/1");
    for (const bad of ["ftp://x.org/", "not a url", "https://user:pw@chat.example.org/"])
      expect(() => validateWebhookUrl(bad)).toThrow(/invalid webhook URL/);
  });
});

describe("what a message carries", () => {
  it("takes out env var values and tokens, keeps short values that would blank the log", () => {
    const text = redact(`pw=s3cret-value token slw_${"a".repeat(43)} glpat-abcdefgh123 DEBUG=1`, [
      "s3cret-value",
      "1",
    ]);
    expect(text).toBe("pw=[redacted] token [redacted] [redacted] DEBUG=1");
  });

  it("keeps the last 20 lines, each bounded, a secret cut in half by the bound still taken out", () => {
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`);
    const long = `${"x".repeat(295)}SECRETVALUE`;
    const tail = tailOf([...lines, long], ["SECRETVALUE"]);
    expect(tail).toHaveLength(20);
    expect(tail[0]).toBe("line 11");
    expect(tail.at(-1)).not.toContain("SECR");
    expect(tailOf(["y".repeat(1000)], [])[0]!.length).toBeLessThanOrEqual(301);
  });
});
