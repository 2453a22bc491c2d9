import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

/** What a logger writes, as text. */
function capture(pretty: boolean) {
  const out = new PassThrough();
  let text = "";
  out.on("data", (c: Buffer) => (text += c.toString()));
  return { logger: createLogger({ level: "info", destination: out, pretty }), text: () => text };
}

describe("the readable log on a terminal", () => {
  it("writes the step sentence of a progress line, not JSON", async () => {
    const { logger, text } = capture(true);
    logger.info(
      {
        stack: "abc",
        step: 3,
        total: 7,
        detail: "stack bookworm: build image, step 3 of 7: downloading packages (29%)",
      },
      "stack progress",
    );
    await new Promise((r) => setImmediate(r));
    expect(text()).toMatch(
      /^\d\d:\d\d:\d\d INFO {2}stack progress: stack bookworm: build image, step 3 of 7: downloading packages \(29%\)\n$/,
    );
  });

  it("writes other fields as key=value and still redacts secrets", async () => {
    const { logger, text } = capture(true);
    logger.child({ component: "api" }).warn({ tool: "web", token: "s3cret" }, "token refused");
    await new Promise((r) => setImmediate(r));
    expect(text()).toMatch(/WARN {2}token refused {2}component=api tool=web token=\[redacted\]\n$/);
    expect(text()).not.toContain("s3cret");
  });

  it("stays JSON when not asked to be readable (a pipe, a file, a log collector)", async () => {
    const { logger, text } = capture(false);
    logger.info({ step: 3 }, "stack progress");
    await new Promise((r) => setImmediate(r));
    expect(JSON.parse(text())).toMatchObject({ msg: "stack progress", step: 3, level: 30 });
  });
});
