import { describe, expect, it } from "vitest";
import { sessionCookie, sessionIdOf } from "./sessions.js";

describe("the dashboard's session cookie", () => {
  it("over https is a __Host- cookie, and a plain one a tool's script planted is not read", () => {
    const name = sessionCookie(true);
    expect(name).toBe("__Host-slipway_session");
    // document.cookie = "slipway_session=planted; domain=<domain>" on a tool's page reaches Slipway's host.
    const header = "slipway_session=planted; __Host-slipway_session=mine";
    expect(sessionIdOf(header, name)).toBe("mine");
    expect(sessionIdOf("slipway_session=planted", name)).toBeUndefined();
  });

  it("over plain http (a local install) keeps the plain name", () => {
    expect(sessionIdOf("a=b; slipway_session=abc=def", sessionCookie(false))).toBe("abc=def");
  });
});
