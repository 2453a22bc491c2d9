import express from "express";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { InputError, UnavailableError } from "../../platform/errors.js";
import { memoryLogger } from "../../platform/logger.js";
import type { Readiness } from "../../ports/readiness.js";
import { createApp } from "./app.js";
import { errorHandler } from "./errors.js";

/** The error mapper with a readiness that says Redis is down, on a real HTTP server. */
let close: (() => void) | undefined;
afterEach(() => close?.());

async function answer(thrown: unknown, readiness: Readiness, logger = memoryLogger()) {
  const app = express();
  app.get("/", () => {
    throw thrown;
  });
  app.use(errorHandler(logger, readiness));
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  close = () => server.close();
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  return {
    status: res.status,
    retryAfter: res.headers.get("retry-after"),
    body: await res.json(),
  };
}

const down: Readiness = {
  check: () => new UnavailableError("Redis is down", 2),
  explain: (error) => new UnavailableError("Redis is down", 2, { cause: error }),
};

describe("errorHandler with a readiness", () => {
  it("answers a failure the outage explains with 503, Retry-After and code unavailable", async () => {
    const logger = memoryLogger();
    const a = await answer(new Error("Connection is closed."), down, logger);
    // The outage is logged once by RedisHealth, not once per request it turns away.
    expect(logger.entries.filter((e) => e.level === "error")).toEqual([]);
    expect(a).toEqual({
      status: 503,
      retryAfter: "2",
      body: { error: { code: "unavailable", message: "Redis is down" } },
    });
  });

  it("keeps a domain error's own answer during an outage", async () => {
    const a = await answer(new InputError("bad ref"), down);
    expect(a.status).toBe(400);
  });
});

/** Slipway's whole app around an API that throws `thrown`, asked `route` with `requestId`. */
async function failingApp(thrown: Error, route: string, requestId: string) {
  const logger = memoryLogger();
  const app = createApp({
    logger,
    rawRouters: [],
    api: () => {
      throw thrown;
    },
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  close = () => server.close();
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}${route}`, {
    headers: { "x-request-id": requestId },
  });
  return { logger, res };
}

describe("an unexpected failure (500)", () => {
  it("answers with a request id that the server's log line of the failure carries too", async () => {
    const { logger, res } = await failingApp(new Error("disk on fire"), "/api/v1/tools", "abc-123");
    expect(res.status).toBe(500);
    expect(res.headers.get("x-request-id")).toBe("abc-123");
    const body = (await res.json()) as { error: { code: string; request_id: string } };
    expect(body.error).toMatchObject({ code: "internal", request_id: "abc-123" });
    const logged = logger.entries.filter((e) => e.level === "error");
    expect(logged).toHaveLength(1);
    expect(logged[0]!.fields).toMatchObject({ requestId: "abc-123", method: "GET", path: "/api/v1/tools" });
  });

  it("makes its own id when the caller's X-Request-Id is not a plain token", async () => {
    const odd = `id with spaces and "quotes" ${"x".repeat(80)}`;
    const { logger, res } = await failingApp(new Error("boom"), "/", odd);
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(logger.entries[0]!.fields).toMatchObject({ requestId: id });
  });
});
