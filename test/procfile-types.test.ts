import path from "node:path";
import { describe, expect, it } from "vitest";
import { git, gitRepo, viaProxy, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, localServerForFile } from "./helpers/local-server.js";

/**
 * Procfile process types as a maintainer meets them, pushed through a real server: `web` serves,
 * `worker` (and `*worker`, `clock`, a lone type) runs as a continuous job, other types are defined
 * and run only by `jobs run NAME`, and a worker-only app has no webservice instead of a worker that
 * fails the web health check.
 */
const fixtures = path.resolve(import.meta.dirname, "fixtures", "apps");
const WORKER = "pt-worker";
const ONESHOT = "pt-oneshot";

const local = localServerForFile({ name: "procfile-types", env: { SLIPWAY_HEALTH_TIMEOUT_S: "30" } }, [
  WORKER,
  ONESHOT,
]);
const client = clientOf(() => local.server);
const { api } = client;

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  release_id: string | null;
  log_tail: string[];
}
interface ReleaseView {
  id: string;
  status: string;
  reason: string | null;
  last_probe: string | null;
}
interface JobView {
  name: string;
  type: string;
  status: { state: string; restarts: number; message: string | null };
}
interface Logs {
  runs: { id: string; status: string; lines: string[] }[];
}

/** Creates the tool, pushes the fixture, waits for the build and its release to settle. */
async function deploy(tool: string, fixture: string) {
  const created = await api<{ git_url: string; token: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name: tool }),
  });
  const repo = await gitRepo({}, path.join(fixtures, fixture));
  const out = await git(repo.dir, [
    "push",
    created.git_url.replace("http://", `http://user:${created.token}@`),
    "main",
  ]);
  const build = await client.buildDone<BuildView>(buildIdFrom(out));
  expect(build.status, JSON.stringify(build)).toBe("success");
  const release = await waitFor(
    `release of ${tool}`,
    async () => {
      const r = await api<ReleaseView>(`/api/v1/tools/${tool}/releases/${build.release_id!}`);
      return r.status !== "deploying" ? r : undefined;
    },
    180_000,
  );
  const log = await api<{ lines: string[] }>(`/api/v1/builds/${build.id}/logs`);
  return { build, release, log: log.lines };
}

const jobsOf = (tool: string) => api<JobView[]>(`/api/v1/tools/${tool}/jobs`);
const cli = (tool: string, args: string[]) => client.cli(args, { tool });

describe("Procfile process types", () => {
  it("runs a worker-only app's worker as a job, with no webservice, and the proxy says why", async () => {
    const { release, log } = await deploy(WORKER, "worker-only");
    // Before: the worker ran as the webservice and failed its health check.
    expect(release.status, JSON.stringify(release)).toBe("live");
    expect(log).toContain("===> PROCESSES from the Procfile:");
    expect(log).toContain("  worker: continuous job, restarted when it exits");
    expect(log).toContain(
      "===> NO WEBSERVICE: its Procfile defines no web process; its processes run as jobs",
    );

    const ticks = await waitFor(
      "worker output",
      async () => {
        const logs = await api<Logs>(`/api/v1/tools/${WORKER}/jobs/worker/logs`);
        const lines = logs.runs.flatMap((r) => r.lines).filter((l) => l.startsWith("worker tick "));
        return lines.length >= 2 ? lines : undefined;
      },
      120_000,
      1000,
    );
    expect(ticks[0]).toMatch(/^worker tick 1 as uid [1-9]\d*$/);
    const listed = await cli(WORKER, ["jobs", "list"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^worker\tcontinuous\trunning\t/m);

    const answer = await viaProxy(local.port, WORKER);
    expect(answer.status).toBe(503);
    expect(answer.body).toContain(`${WORKER} has no webservice (its Procfile defines no web process)`);

    const status = await cli(WORKER, ["webservice", "status"]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`${WORKER}: none`);
    expect(status.stdout).toContain(
      "note     the live release has no webservice: its Procfile defines no web process",
    );
  }, 900_000);

  it("defines one-shot types without running them, runs one once on request, stops a one-shot clock, keeps web live", async () => {
    const { release, log } = await deploy(ONESHOT, "procfile-oneshot");
    expect(release.status, JSON.stringify(release)).toBe("live");
    expect(log).toEqual(
      expect.arrayContaining([
        "===> PROCESSES from the Procfile:",
        "  web: webservice, served on $PORT",
        "  custom: defined, not running: start it with `slipway jobs run custom`",
        "  migrate: defined, not running: start it with `slipway jobs run migrate`",
        "  clock: continuous job, restarted when it exits",
      ]),
    );
    const web = await viaProxy(local.port, ONESHOT);
    expect(web).toEqual({ status: 200, body: "web of the one-shot fixture\n" });

    const jobs = await waitFor(
      "the release's jobs",
      async () => {
        const list = await jobsOf(ONESHOT);
        return list.length === 3 ? list : undefined;
      },
      60_000,
      1000,
    );
    expect(jobs.map((j) => [j.name, j.type])).toEqual([
      ["clock", "continuous"],
      ["custom", "one-off"],
      ["migrate", "one-off"],
    ]);
    // The clock is continuous: defined like the one-offs until the job runner starts it a moment later.
    await waitFor(
      "the clock to start",
      async () =>
        (await jobsOf(ONESHOT)).find((j) => j.name === "clock")?.status.state !== "defined"
          ? true
          : undefined,
      60_000,
      500,
    );
    const listed = await cli(ONESHOT, ["jobs", "list"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^custom\tone-off\tdefined, not running\t/m);
    expect(listed.stdout).toMatch(/^migrate\tone-off\tdefined, not running\t/m);
    expect(listed.stdout).toContain(
      "defined, not running: custom, migrate (`slipway jobs run NAME` runs one once)",
    );

    const ran = await cli(ONESHOT, ["jobs", "run", "migrate", "--wait", "120"]);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toContain("migrated the schema to version 2");
    expect((await api<Logs>(`/api/v1/tools/${ONESHOT}/jobs/migrate/logs`)).runs).toHaveLength(1);
    expect((await api<Logs>(`/api/v1/tools/${ONESHOT}/jobs/custom/logs`)).runs).toHaveLength(0);

    // `clock: echo tick` exits 0 at once: five quick clean exits and it is stopped, not restarted forever.
    const clock = await waitFor(
      "clock stopped as a one-off command",
      async () => {
        const found = (await jobsOf(ONESHOT)).find((j) => j.name === "clock");
        return found?.status.state === "stopped" ? found : undefined;
      },
      300_000,
      1000,
    );
    expect(clock.status.message).toMatch(
      /^stopped: it looks like a one-off command \(it exited 0 5 times in a row, each within 60 s\); declare it as one-off: in the Procfile give it a type other than web, worker, \*worker or clock/,
    );
    const clockRuns = (await api<Logs>(`/api/v1/tools/${ONESHOT}/jobs/clock/logs`)).runs;
    expect(clockRuns).toHaveLength(5);
    expect(clockRuns.every((r) => r.status === "succeeded" && r.lines.includes("tick"))).toBe(true);
    expect(await viaProxy(local.port, ONESHOT)).toEqual(web);
  }, 900_000);
});
