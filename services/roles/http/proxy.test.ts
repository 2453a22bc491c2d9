import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import { freePort } from "../../platform/net.js";
import type { Route, StateStore } from "../../ports/store.js";
import { FrontProxy } from "./proxy.js";

// The front proxy's balancing over a route's replicas: real HTTP servers on loopback as the replicas,
// a hand-written store holding the route.

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A replica that answers its name. */
async function replica(name: string): Promise<{ host: string; port: number }> {
  const server = http.createServer((_req, res) => res.end(name));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { host: "127.0.0.1", port: (server.address() as AddressInfo).port };
}

function storeWith(route: Route): StateStore {
  return {
    getRoute: (tool: string) => Promise.resolve(tool === route.tool ? route : undefined),
    watchRoutes: () => Promise.resolve(),
  } as unknown as StateStore;
}

/** The proxy behind a real listener, and a GET through it as the browser sends it. */
async function serve(route: Route) {
  const proxy = await FrontProxy.create(storeWith(route), "localhost", memoryLogger());
  const server = http.createServer((req, res) => void proxy.handle(route.tool, req, res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(async () => {
    proxy.close();
    await new Promise((r) => server.close(() => r(undefined)));
  });
  const port = (server.address() as AddressInfo).port;
  return async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    return { status: res.status, body: await res.text() };
  };
}

function route(upstreams: { host: string; port: number }[]): Route {
  return { tool: "lb", release_id: "r1", host: upstreams[0]!.host, port: upstreams[0]!.port, upstreams };
}

describe("FrontProxy over several replicas", () => {
  it("takes turns over the replicas", async () => {
    const get = await serve(route([await replica("a"), await replica("b"), await replica("c")]));
    const bodies: string[] = [];
    for (let i = 0; i < 6; i++) bodies.push((await get()).body);
    expect(bodies).toEqual(["a", "b", "c", "a", "b", "c"]);
  });

  it("sends a request another replica's way when its turn's replica refuses the connection", async () => {
    const dead = { host: "127.0.0.1", port: await freePort() };
    const get = await serve(route([await replica("a"), dead, await replica("c")]));
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await get());
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers.map((a) => a.body)).toEqual(["a", "c", "c", "a", "c", "c"]);
  });

  it("still reads routes written before replicas existed (host and port only)", async () => {
    const only = await replica("solo");
    const get = await serve({ tool: "lb", release_id: "r0", host: only.host, port: only.port });
    expect(await get()).toEqual({ status: 200, body: "solo" });
  });

  it("answers 503 saying why when the live release has no webservice", async () => {
    const get = await serve({ tool: "lb", release_id: "r2", host: "", port: 0, upstreams: [] });
    const answer = await get();
    expect(answer.status).toBe(503);
    expect(answer.body).toContain("lb has no webservice (its Procfile defines no web process)");
  });
});

describe("FrontProxy for a tool with no running webservice", () => {
  async function answer(store: Partial<StateStore>, tool: string) {
    const proxy = await FrontProxy.create(
      {
        getRoute: () => Promise.resolve(undefined),
        watchRoutes: () => Promise.resolve(),
        listReleases: () => Promise.resolve([]),
        listBuilds: () => Promise.resolve([]),
        ...store,
      } as unknown as StateStore,
      "localhost",
      memoryLogger(),
      "http://slipway.example:8080/",
    );
    const server = http.createServer((req, res) => void proxy.handle(tool, req, res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(async () => {
      proxy.close();
      await new Promise((r) => server.close(() => r(undefined)));
    });
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    return {
      status: res.status,
      message: ((await res.json()) as { error: { message: string } }).error.message,
    };
  }
  const exists = { getTool: (name: string) => Promise.resolve({ name }) } as unknown as Partial<StateStore>;

  it("says which build a never-released tool waits on, and in what state", async () => {
    const pending = { id: "b-42", status: "pending", phase: "queued" };
    const got = await answer({ ...exists, listBuilds: () => Promise.resolve([pending]) } as never, "web");
    expect(got).toEqual({
      status: 503,
      message: "web has no release yet: build b-42 is pending (phase queued)",
    });
  });

  it("says where to push when a tool has no build at all", async () => {
    const got = await answer(exists, "web");
    expect(got).toEqual({
      status: 503,
      message: "web has no release yet: no build yet: push to http://slipway.example:8080/git/web.git",
    });
  });

  it("says a released tool is stopped, and an unknown tool is not there (404)", async () => {
    const released = await answer(
      { ...exists, listReleases: () => Promise.resolve([{ id: "r1" }]) } as never,
      "web",
    );
    expect(released.status).toBe(503);
    expect(released.message).toContain('tool "web" has no running webservice (stopped)');
    const unknown = await answer({ getTool: () => Promise.resolve(undefined) }, "nope");
    expect(unknown.status).toBe(404);
    expect(unknown.message).toMatch(/^no tool named "nope"/);
  });
});

describe("FrontProxy and a tool's cookies", () => {
  it("makes every cookie a tool sets its own host's: no Domain reaches the browser", async () => {
    // A tool at lb.localhost that sets a cookie for `localhost` would have it sent to Slipway's own
    // host (the API and dashboard) and to every other tool, or overwrite a cookie of theirs.
    const server = http.createServer((_req, res) => {
      res.setHeader("set-cookie", [
        "session=evil; Domain=localhost; Path=/; HttpOnly",
        "other=x;domain=.localhost",
        "own=1; Path=/; SameSite=Lax",
      ]);
      res.end("ok");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise((r) => server.close(() => r())));
    const up = { host: "127.0.0.1", port: (server.address() as AddressInfo).port };
    const proxy = await FrontProxy.create(storeWith(route([up])), "localhost", memoryLogger());
    const front = http.createServer((req, res) => void proxy.handle("lb", req, res));
    await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
    closers.push(async () => {
      proxy.close();
      await new Promise((r) => front.close(() => r(undefined)));
    });
    const res = await fetch(`http://127.0.0.1:${(front.address() as AddressInfo).port}/`);
    expect(res.headers.getSetCookie()).toEqual([
      "session=evil; Path=/; HttpOnly",
      "other=x",
      "own=1; Path=/; SameSite=Lax",
    ]);
  });
});
