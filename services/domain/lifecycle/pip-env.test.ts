import { describe, expect, it } from "vitest";
import { pipEnvironment } from "./pip-env.js";

describe("pipEnvironment", () => {
  it("points pip at the operator's index, trusting a plain-HTTP one's host, and at nothing when unset", () => {
    expect(pipEnvironment(undefined)).toEqual({});
    expect(pipEnvironment("https://pypi.internal/simple/")).toEqual({
      PIP_INDEX_URL: "https://pypi.internal/simple/",
    });
    expect(pipEnvironment("http://mirror:3141/root/pypi/+simple/")).toEqual({
      PIP_INDEX_URL: "http://mirror:3141/root/pypi/+simple/",
      PIP_TRUSTED_HOST: "mirror:3141",
    });
  });
});
