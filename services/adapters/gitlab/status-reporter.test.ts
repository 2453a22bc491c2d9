import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { memoryLogger } from "../../platform/logger.js";
import { GitlabStatusReporter } from "./status-reporter.js";

// A status reporter is built for every build event. Each used to carry its own connection pool, so
// every commit-status post paid a new TCP (and, against a real GitLab, TLS) connection.
describe("GitLab status reporters", () => {
  let server: Server;
  let host: string;
  let connections = 0;
  const posts: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      posts.push(`${req.method ?? ""} ${req.url ?? ""}`);
      req.resume();
      req.on("end", () => {
        res.writeHead(201, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: posts.length, status: "running" }));
      });
    });
    server.on("connection", () => connections++);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("share one connection to GitLab across reporters built for separate events", async () => {
    const allowHosts = ["127.0.0.1"];
    for (const state of ["pending", "running", "success", "pending", "running", "success"] as const) {
      const reporter = GitlabStatusReporter.create({
        host,
        token: "t0ken",
        allowHosts,
        logger: memoryLogger(),
      });
      const result = await reporter.report({
        projectId: 42,
        sha: "a".repeat(40),
        ref: "main",
        name: "slipway/web",
        state,
      });
      expect(result).toMatchObject({ ok: true });
    }
    expect(posts).toHaveLength(6);
    // A connection goes back to the pool a moment after its response is read, so the next post may
    // open a second one; after that the two serve every post. With a pool per reporter: 6.
    expect(connections).toBeLessThanOrEqual(2);
  });
});
