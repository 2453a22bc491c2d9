import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";
import { parsePromText, valueOf } from "./helpers/prom-text.js";
import { roleServers } from "./helpers/role-servers.js";

/**
 * `/metrics` when the roles run as separate servers on one Redis, one registry and one home: the API
 * role accepts the push, the builder and deployer servers take it live. The API role's `/metrics` shows
 * the build, its phases (timed by the builder process) and its deploy: the counts live in Redis.
 */
const TOOL = "metrics-roles";

let tmp: string;
let roles: Awaited<ReturnType<typeof roleServers>> | undefined;
let api: RunningServer | undefined;
const others: RunningServer[] = [];
const client = clientOf(() => api!);

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "slipway-metrics-roles-"));
  roles = await roleServers(tmp);
}, 1_200_000);

afterAll(async () => {
  await api?.close();
  for (const s of others) await s.close();
  await removeToolContainers(TOOL);
  await roles?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("metrics with the roles in separate servers", () => {
  it("a build run by the builder and deployer servers is counted at the API server", async () => {
    api = (await startLocalServer(roles!.options("api"))).server;
    const tool = await client.api<{ git_url: string; token: string }>("/api/v1/tools", {
      method: "POST",
      body: JSON.stringify({ name: TOOL }),
    });
    const work = await gitRepo({ "index.html": "<h1>counted</h1>\n" });
    const buildId = buildIdFrom(
      await git(work.dir, ["push", tool.git_url.replace("http://", `http://user:${tool.token}@`), "main"]),
    );
    others.push((await startLocalServer(roles!.options("deployer"))).server);
    others.push((await startLocalServer(roles!.options("builder"))).server);
    const built = await roles!.buildEnded(buildId);
    expect(built.status, JSON.stringify(built)).toBe("success");

    const scrape = async () => {
      const res = await fetch(`${api!.url}/metrics`, {
        headers: { authorization: `Bearer ${api!.adminToken}` },
      });
      expect(res.status).toBe(200);
      return parsePromText(await res.text()).samples;
    };
    const s = await waitFor(
      "the API role to count the build",
      async () => {
        const got = await scrape();
        return valueOf(got, "slipway_builds_total", { outcome: "success" }) === 1 ? got : undefined;
      },
      30_000,
      500,
    );
    expect(valueOf(s, "slipway_deploys_total", { kind: "deploy", outcome: "live" })).toBe(1);
    expect(valueOf(s, "slipway_push_to_live_seconds_count")).toBe(1);
    expect(valueOf(s, "slipway_build_queue_wait_seconds_count")).toBe(1);
    // Timed by the builder process, read by the API process.
    expect(valueOf(s, "slipway_build_phase_duration_seconds_count", { phase: "export" })).toBe(1);
    // This API process runs no deployer, but the containers are on this machine's podman.
    expect(valueOf(s, "slipway_up", { component: "runtime" })).toBe(1);
  }, 900_000);
});
