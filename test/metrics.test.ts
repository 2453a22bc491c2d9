import { describe, expect, it } from "vitest";
import { git, gitRepo, pythonApp, viaProxy, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, localServerForFile } from "./helpers/local-server.js";
import { parsePromText, valueOf, type Sample } from "./helpers/prom-text.js";

/**
 * `/metrics` as an operator's Prometheus sees it, on the local profile: two pushes that go live, one
 * that fails, a rollback, webhook deliveries and two failed job runs move the counters and histograms
 * with the right labels; the queue, the dependencies and the tool's container are measured at scrape
 * time; only the admin token may scrape, and no token appears in what it returns.
 */
const TOOL = "metrics-app";
const local = localServerForFile({ name: "metrics" }, [TOOL]);
const client = clientOf(() => local.server);
const { api } = client;

interface BuildView {
  id: string;
  status: string;
  release_id: string | null;
}

async function scrape(token = local.server.adminToken): Promise<Response> {
  return fetch(`${local.server.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
}

async function samples(): Promise<Sample[]> {
  const res = await scrape();
  expect(res.status).toBe(200);
  return parsePromText(await res.text()).samples;
}

describe("Prometheus metrics", () => {
  let tool: { git_url: string; token: string; redeploy_url: string };

  it("builds, a failed build, a rollback, webhooks and job runs show in /metrics with their labels", async () => {
    tool = await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name: TOOL }) });
    const pushUrl = tool.git_url.replace("http://", `http://user:${tool.token}@`);
    // A one-off job in the config that always fails: its runs are counted by tool, job and outcome.
    const repo = await gitRepo({
      ...pythonApp("v1"),
      Procfile: "web: python3 app.py\n",
      "slipway.yaml": [
        "components:",
        "  web: { run: { command: web, port: 8000 } }",
        "  migrate:",
        "    component_type: one-off",
        "    run: { command: 'python3 -c \"import sys; sys.exit(3)\"' }",
        "",
      ].join("\n"),
    });
    const push = async () =>
      client.buildDone<BuildView>(buildIdFrom(await git(repo.dir, ["push", pushUrl, "main"])));

    expect((await push()).status).toBe("success");
    const jobs = `/api/v1/tools/${TOOL}/jobs`;
    for (let i = 0; i < 2; i++) {
      const ran = await waitFor(
        "the config's one-off job",
        () => api<{ run_id: string }>(jobs, { method: "POST", body: JSON.stringify({ name: "migrate" }) }),
        60_000,
        1000,
      );
      const done = await waitFor(
        "the job run",
        async () => {
          const r = await api<{ final: boolean; status: string }>(
            `${jobs}/migrate/runs/${ran.run_id}?wait=20`,
          );
          return r.final ? r : undefined;
        },
        120_000,
      );
      expect(done.status).toBe("failed");
    }
    await repo.commit(pythonApp("v2"), "v2");
    expect((await push()).status).toBe("success");
    expect(await viaProxy(local.port, TOOL)).toEqual({ status: 200, body: "v2" });
    // Webhooks: a wrong token, then the right one (v2 is built again, or answered without a build).
    const hook = new URL(tool.redeploy_url);
    const bad = await fetch(`${local.server.url}${hook.pathname}?token=slr-wrong`, { method: "POST" });
    expect(bad.status).toBe(401);
    const good = await fetch(`${local.server.url}${hook.pathname}${hook.search}`, { method: "POST" });
    expect([200, 202]).toContain(good.status);
    if (good.status === 202) {
      const queued = (await good.json()) as { build_id: string };
      expect((await client.buildDone<BuildView>(queued.build_id)).status).toBe("success");
    }

    // No buildpack detects a README alone: a failure in detect.
    await git(repo.dir, ["rm", "-q", "app.py", "Procfile", "slipway.yaml"]);
    await repo.commit({ "README.md": "nothing to run\n" }, "broken");
    expect((await push()).status).toBe("failure");

    const rolled = await api<{ id: string }>(`/api/v1/tools/${TOOL}/rollback`, {
      method: "POST",
      body: "{}",
    });
    await waitFor(
      "the rollback live",
      async () => {
        const r = await api<{ status: string }>(`/api/v1/tools/${TOOL}/releases/${rolled.id}`);
        return r.status === "live" ? r : undefined;
      },
      120_000,
    );

    // State events are counted by a consumer group: wait until the last of them is in.
    const s = await waitFor(
      "metrics to count the rollback",
      async () => {
        const got = await samples();
        return valueOf(got, "slipway_deploys_total", { kind: "rollback", outcome: "live" }) === 1
          ? got
          : undefined;
      },
      30_000,
      500,
    );
    const successes = valueOf(s, "slipway_builds_total", { outcome: "success" });
    expect(successes).toBeGreaterThanOrEqual(2);
    expect(valueOf(s, "slipway_builds_total", { outcome: "failure" })).toBe(1);
    expect(valueOf(s, "slipway_deploys_total", { kind: "deploy", outcome: "live" })).toBe(successes);
    expect(valueOf(s, "slipway_build_duration_seconds_count", { outcome: "success" })).toBe(successes);
    expect(valueOf(s, "slipway_build_duration_seconds_count", { outcome: "failure" })).toBe(1);
    expect(valueOf(s, "slipway_build_duration_seconds_bucket", { outcome: "failure", le: "+Inf" })).toBe(1);
    expect(valueOf(s, "slipway_push_to_live_seconds_count")).toBe(successes);
    expect(valueOf(s, "slipway_push_to_live_seconds_sum")).toBeGreaterThan(0);
    expect(valueOf(s, "slipway_build_queue_wait_seconds_count")).toBe(successes + 1);
    // Every build fetched; the failed one stopped in detect, so only the good ones exported.
    expect(valueOf(s, "slipway_build_phase_duration_seconds_count", { phase: "fetch" })).toBe(successes + 1);
    expect(valueOf(s, "slipway_build_phase_duration_seconds_count", { phase: "detect" })).toBe(successes + 1);
    expect(valueOf(s, "slipway_build_phase_duration_seconds_count", { phase: "export" })).toBe(successes);
    expect(
      valueOf(s, "slipway_webhook_deliveries_total", { hook: "redeploy", outcome: "unauthorized" }),
    ).toBe(1);
    expect(
      valueOf(s, "slipway_webhook_deliveries_total", {
        hook: "redeploy",
        outcome: good.status === 202 ? "accepted" : "not_built",
      }),
    ).toBe(1);

    const started = performance.now();
    await samples();
    console.log(
      `one scrape with the tool's web container running: ${Math.round(performance.now() - started)} ms`,
    );
    expect(valueOf(s, "slipway_job_runs_total", { tool: TOOL, job: "migrate", outcome: "failed" })).toBe(2);

    // Measured at scrape time.
    for (const component of ["redis", "registry", "runtime"])
      expect(valueOf(s, "slipway_up", { component }), component).toBe(1);
    expect(s.some((x) => x.name === "slipway_queue_jobs" && x.labels.queue === "build")).toBe(true);
    expect(
      valueOf(s, "slipway_tool_memory_bytes", { tool: TOOL, kind: "web", process: "web" }),
    ).toBeGreaterThan(0);
    expect(s.some((x) => x.name === "slipway_tool_cpu_percent" && x.labels.tool === TOOL)).toBe(true);
  });

  it("only the admin token may scrape, and no token is in the output", async () => {
    expect((await fetch(`${local.server.url}/metrics`)).status).toBe(401);
    expect((await scrape("sla-not-the-token")).status).toBe(401);
    expect((await scrape(tool.token)).status).toBe(403);
    const text = await (await scrape()).text();
    expect(text).toContain("# TYPE slipway_builds_total counter");
    expect(text).toContain("# TYPE slipway_build_duration_seconds histogram");
    const redeployToken = new URL(tool.redeploy_url).searchParams.get("token")!;
    for (const secret of [local.server.adminToken, tool.token, redeployToken])
      expect(text).not.toContain(secret);
  });
});
