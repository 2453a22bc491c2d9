import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

/** A real pino logger writing JSON lines into memory. */
function capture() {
  const out = new PassThrough();
  const lines: string[] = [];
  out.on("data", (chunk: Buffer) => lines.push(...chunk.toString("utf8").trim().split("\n")));
  return { logger: createLogger({ level: "debug", destination: out }), lines };
}

describe("logging an error as { err }", () => {
  it("keeps its message, code, stack and cause, and none of the request a client library hung on it", async () => {
    const { logger, lines } = capture();
    const cause = Object.assign(new Error("GitLab answered 500"), { code: "gitlab_failed" });
    // As HTTP clients do: the failed request, headers and all, as a property of the error.
    const error = Object.assign(new Error("could not post the commit status", { cause }), {
      request: { headers: { "PRIVATE-TOKEN": "glpat-leaky-credential" } },
      config: { auth: "Basic c2VjcmV0" },
    });
    logger.error({ err: error, tool: "t" }, "status failed");
    await new Promise((r) => setImmediate(r));
    const line = lines.join("\n");
    expect(line).not.toContain("glpat-leaky-credential");
    expect(line).not.toContain("c2VjcmV0");
    const entry = JSON.parse(lines[0]!) as { err: Record<string, unknown>; tool: string };
    expect(entry.tool).toBe("t");
    expect(entry.err).toMatchObject({
      type: "Error",
      message: "could not post the commit status",
      cause: { message: "GitLab answered 500", code: "gitlab_failed" },
    });
    expect(entry.err.stack).toMatch(/logger\.test\.ts/);
  });

  it("writes a thrown non-Error as its message", async () => {
    const { logger, lines } = capture();
    logger.warn({ err: "plain string" }, "odd failure");
    await new Promise((r) => setImmediate(r));
    expect((JSON.parse(lines[0]!) as { err: unknown }).err).toEqual({ message: "plain string" });
  });
});
