import { describe, expect, it } from "vitest";
import { parseCgiHead } from "./cgi.js";

describe("parseCgiHead", () => {
  it("waits for the blank line", () => {
    expect(parseCgiHead(Buffer.from("Content-Type: text/plain\r\n"))).toBeUndefined();
  });

  it("reads headers, Status and the start of the body (CRLF)", () => {
    const head = parseCgiHead(
      Buffer.from("Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nRepository not found"),
    );
    expect(head?.status).toBe(404);
    expect(head?.headers).toEqual([["Content-Type", "text/plain"]]);
    expect(head?.rest.toString()).toBe("Repository not found");
  });

  it("accepts bare LF and defaults to 200", () => {
    const head = parseCgiHead(
      Buffer.from(
        "Expires: Fri, 01 Jan 1980 00:00:00 GMT\nContent-Type: application/x-git-upload-pack-advertisement\n\n001e#",
      ),
    );
    expect(head?.status).toBe(200);
    expect(head?.headers.map(([n]) => n)).toEqual(["Expires", "Content-Type"]);
    expect(head?.rest.toString()).toBe("001e#");
  });

  it("keeps binary body bytes intact, even a blank-line lookalike", () => {
    const body = Buffer.from([0x50, 0x41, 0x0a, 0x0a, 0xff, 0x00]);
    const head = parseCgiHead(Buffer.concat([Buffer.from("Content-Type: x\r\n\r\n"), body]));
    expect(head?.rest.equals(body)).toBe(true);
  });

  it("turns a Location without Status into a redirect", () => {
    expect(parseCgiHead(Buffer.from("Location: /elsewhere\n\n"))?.status).toBe(302);
  });

  it("rejects malformed headers", () => {
    expect(() => parseCgiHead(Buffer.from("no colon here\n\n"))).toThrow(/malformed CGI header/);
    expect(() => parseCgiHead(Buffer.from("Status: abc\n\n"))).toThrow(/malformed CGI Status/);
    expect(() => parseCgiHead(Buffer.alloc(70 * 1024, 0x61))).toThrow(/too long/);
  });
});
