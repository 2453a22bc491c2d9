import { describe, expect, it } from "vitest";
import { freePort } from "../../platform/net.js";
import { commandConnection, closeConnection, isConnectionError } from "./connection.js";

describe("commandConnection", () => {
  it("fails a command at once when nothing listens, with an error isConnectionError recognises", async () => {
    const port = await freePort();
    const redis = commandConnection(`redis://127.0.0.1:${port}`);
    try {
      const error = await redis.get("k").then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect(isConnectionError(error)).toBe(true);
    } finally {
      await closeConnection(redis);
    }
    // Closed for good: no reconnect attempt after the close.
    let attempts = 0;
    redis.on("connecting", () => attempts++);
    await new Promise((r) => setTimeout(r, 1500));
    expect(attempts).toBe(0);
  });

  it("does not take a Redis reply error for an outage", () => {
    const reply = Object.assign(
      new Error("WRONGTYPE Operation against a key holding the wrong kind of value"),
      {
        name: "ReplyError",
      },
    );
    expect(isConnectionError(reply)).toBe(false);
    expect(isConnectionError("Command timed out")).toBe(false);
  });
});
