import { describe, expect, it } from "vitest";
import { resolveLink } from "./checkout.js";

describe("resolveLink", () => {
  const none = new Map<string, string>();

  it("resolves links that stay inside the tree", () => {
    expect(resolveLink("a/b/link", "../c", none)).toBe("a/c");
    expect(resolveLink("link", "./x/./y", none)).toBe("x/y");
    expect(resolveLink("a/link", "..", none)).toBe("");
  });

  it("refuses absolute targets and too many ..", () => {
    expect(resolveLink("link", "/etc/passwd", none)).toBeUndefined();
    expect(resolveLink("a/b/link", "../../../x", none)).toBeUndefined();
    expect(resolveLink("link", "..", none)).toBeUndefined();
  });

  it("follows other links of the tree, so a harmless-looking chain cannot escape", () => {
    const links = new Map([
      ["d/up", ".."],
      ["d/x", "up/.."],
    ]);
    expect(resolveLink("d/up", "..", links)).toBe("");
    expect(resolveLink("d/x", "up/..", links)).toBeUndefined();
  });

  it("refuses loops", () => {
    const links = new Map([
      ["a", "b"],
      ["b", "a"],
    ]);
    expect(resolveLink("a", "b", links)).toBeUndefined();
  });
});
