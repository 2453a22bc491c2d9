import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gitRepo, git, waitFor } from "../helpers/apps.js";
import {
  buildIdFrom,
  capturedLogger,
  clientOf,
  removeToolContainers,
  startLocalServer,
  type LocalServer,
} from "../helpers/local-server.js";
import { childPid, killLeftovers } from "../helpers/server-process.js";

/**
 * Issue 11, item 6: Redis and the registry Slipway starts are supervised. `kill -9` of either, during a
 * webhook burst or a build's push, restarts it on its port; the server keeps serving; nothing accepted
 * is lost; `build list` tells the truth afterwards.
 */
const pushHook = JSON.parse(
  readFileSync(
    path.join(import.meta.dirname, "..", "fixtures", "gitlab", "gitlab-push-hook.docs.json"),
    "utf8",
  ),
) as Record<string, unknown>;

const servers: LocalServer[] = [];
const tools: string[] = [];

async function start(name: string, options: Parameters<typeof startLocalServer>[0] = {}) {
  const log = capturedLogger("info");
  const s = await startLocalServer({
    name,
    logger: log.logger,
    // Every delivery of the burst must be answered by the server, not by the rate limiter.
    env: { SLIPWAY_WEBHOOK_RATE_PER_TOOL: "0", SLIPWAY_WEBHOOK_RATE_PER_ADDRESS: "0" },
    ...options,
  });
  servers.push(s);
  return { s, log: log.text, client: clientOf(() => s.server) };
}

const ports = (s: LocalServer) => [s.config.redisPort, s.config.registryPort];

afterAll(async () => {
  for (const s of servers) {
    await s.server.close().catch(() => undefined);
    await killLeftovers(s.home, ports(s));
    await rm(s.home, { recursive: true, force: true });
  }
  for (const t of tools) await removeToolContainers(t);
}, 120_000);

interface ToolView {
  name: string;
  token: string;
  git_url: string;
  webhook_secret: string;
}

interface BuildView {
  id: string;
  status: string;
  phase: string | null;
  reason: string | null;
}

const sha = (n: number) => n.toString(16).padStart(40, "a");

describe("supervised Redis", () => {
  it("comes back after kill -9 during a webhook burst; every accepted delivery is still there", async () => {
    const { s, log, client } = await start("fs-redis", { role: "api", ready: false });
    const tool = await client.api<ToolView>("/api/v1/tools", { method: "POST", body: '{"name":"burst"}' });
    const before = (await childPid(s.home, ports(s), "redis-server"))!;
    expect(before).toBeDefined();

    const deliver = async (i: number) => {
      await new Promise((r) => setTimeout(r, i * 30));
      try {
        const res = await fetch(`${s.server.url}/hooks/gitlab/${tool.name}`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-gitlab-event": "Push Hook",
            "x-gitlab-token": tool.webhook_secret,
          },
          body: JSON.stringify({ ...pushHook, checkout_sha: sha(i), after: sha(i) }),
          signal: AbortSignal.timeout(60_000),
        });
        return { status: res.status, body: (await res.json()) as { build_id?: string } };
      } catch (e) {
        return { status: 0, body: { error: String(e) } as { build_id?: string } };
      }
    };
    const burst = Promise.all(Array.from({ length: 60 }, (_, i) => deliver(i)));
    await new Promise((r) => setTimeout(r, 600));
    process.kill(before, "SIGKILL");
    const answers = await burst;

    const after = await waitFor(
      "redis-server back on its port",
      async () => {
        const pid = await childPid(s.home, ports(s), "redis-server");
        return pid !== undefined && pid !== before ? pid : undefined;
      },
      60_000,
      200,
    );
    expect(after).not.toBe(before);
    // The server answers again, from the same data.
    const listed = await waitFor(
      "the API to answer after the restart",
      async () => client.api<{ name: string }[]>("/api/v1/tools"),
      60_000,
    );
    expect(listed.map((t) => t.name)).toContain("burst");
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted.length).toBeGreaterThan(0);
    for (const a of accepted) {
      const b = await client.api<BuildView>(`/api/v1/builds/${a.body.build_id}`);
      expect(b.id).toBe(a.body.build_id);
    }
    expect(log()).toMatch(/"child":"redis-server".*"msg":"child process died; restarting it"/);
    expect(log()).toMatch(/"child":"redis-server".*"msg":"child process restarted"/);
  }, 300_000);
});

describe("supervised registry", () => {
  it("comes back after kill -9 during a build's push; the build ends and build list tells the truth", async () => {
    const { s, log, client } = await start("fs-registry");
    const tool = await client.api<ToolView>("/api/v1/tools", {
      method: "POST",
      body: '{"name":"sup-static"}',
    });
    tools.push(tool.name);
    const before = (await childPid(s.home, ports(s), "docker-registry"))!;
    expect(before).toBeDefined();

    const repo = await gitRepo({ "index.html": "<h1>supervised</h1>\n" });
    const id = buildIdFrom(
      await git(repo.dir, ["push", tool.git_url.replace("http://", `http://x:${tool.token}@`), "main"]),
    );
    // Just before the image goes to the registry: the moment a dead registry hurts most.
    await waitFor(
      `build ${id} to reach its export`,
      async () => {
        const b = await client.api<BuildView>(`/api/v1/builds/${id}`);
        return b.phase === "export" || (b.status !== "running" && b.status !== "pending") ? b : undefined;
      },
      600_000,
      50,
    );
    process.kill(before, "SIGKILL");

    const after = await waitFor(
      "docker-registry back on its port",
      async () => {
        const pid = await childPid(s.home, ports(s), "docker-registry");
        if (pid === undefined || pid === before) return undefined;
        const res = await fetch(`http://127.0.0.1:${s.config.registryPort}/v2/`);
        return res.status === 401 ? pid : undefined;
      },
      60_000,
      200,
    );
    expect(after).not.toBe(before);
    const done = await client.buildDone<BuildView>(id);
    // Either the push got through (the registry was back in time) or the build says why it did not.
    if (done.status !== "success") {
      expect(done.status).toBe("failure");
      expect(done.reason).toMatch(/registry|push|export/i);
    }
    const listed = await client.cli(["build", "list", "--json", "--tool", tool.name]);
    const rows = JSON.parse(listed.stdout) as BuildView[];
    expect(rows.find((r) => r.id === id)?.status).toBe(done.status);
    expect(log()).toMatch(/"child":"docker-registry".*"msg":"child process died; restarting it"/);
    expect(log()).toMatch(/"child":"docker-registry".*"msg":"child process restarted"/);

    // A build after the restart pushes to the restarted registry.
    const again = buildIdFrom(
      await git(repo.dir, ["commit", "--allow-empty", "-q", "-m", "again"]).then(() =>
        git(repo.dir, ["push", tool.git_url.replace("http://", `http://x:${tool.token}@`), "main"]),
      ),
    );
    expect((await client.buildDone<BuildView>(again)).status).toBe("success");
  }, 1_200_000);
});
