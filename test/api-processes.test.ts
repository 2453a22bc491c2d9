import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { waitFor } from "./helpers/apps.js";
import {
  childrenOf,
  cmdlineOf,
  serverPorts,
  startServerProcess,
  stopServerProcess,
  type ServerProcess,
} from "./helpers/server-process.js";

// Issue 17 item 2: SLIPWAY_API_PROCESSES runs the API role in node:cluster workers sharing the port.
// A real `slipway server` with two: both answer, deliveries through either are queued exactly once, a
// killed worker is replaced, and SIGTERM stops the workers, Redis and the registry with the server.

const pushHook = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "fixtures", "gitlab", "gitlab-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;

let home: string | undefined;
let server: ServerProcess | undefined;

afterAll(async () => {
  await stopServerProcess(server);
  if (home) await rm(home, { recursive: true, force: true });
}, 60_000);

/** One request on a connection of its own, so the primary hands it to the next worker. */
function request(url: string, method: string, headers: Record<string, string>, body?: string) {
  return new Promise<{ status: number; process: string | undefined; body: string }>((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          process: res.headers["x-slipway-process"] as string,
          body: text,
        }),
      );
    });
    req.on("error", reject);
    // A connection handed to a worker that is being killed gets no answer.
    req.setTimeout(5_000, () => req.destroy(new Error("no answer in 5 s")));
    req.end(body);
  });
}

/** The node processes the server forked: its API workers. */
async function workerPids(pid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const task of await readdir(`/proc/${pid}/task`)) {
    const children = await readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch(() => "");
    for (const child of children.split(" ").filter(Boolean).map(Number)) {
      if ((await cmdlineOf(child))?.[0] === process.execPath) pids.push(child);
    }
  }
  return pids;
}

describe("SLIPWAY_API_PROCESSES=2", () => {
  it("answers from both workers, queues each delivery once, replaces a killed worker and stops cleanly", async () => {
    home = await mkdtemp(path.join(os.tmpdir(), "slipway-api-processes-"));
    const ports = await serverPorts();
    server = await startServerProcess(home, ports, { SLIPWAY_API_PROCESSES: "2" });
    const primary = server.child.pid!;
    await waitFor(
      "two api processes",
      async () => ((await workerPids(primary)).length === 2 ? true : undefined),
      30_000,
    );
    // Each worker's lines say it is the API role and which process it is; the primary keeps the rest.
    const started = () =>
      server!
        .output()
        .split("\n")
        .filter((l) => l.includes('"slipway started"'))
        .map((l) => JSON.parse(l) as { role: string; apiProcess?: number });
    await waitFor(
      "three processes started",
      () => Promise.resolve(started().length === 3 ? true : undefined),
      30_000,
    );
    expect(
      started()
        .map((s) => `${s.role} ${s.apiProcess ?? "-"}`)
        .sort(),
    ).toEqual(["all -", "api 1", "api 2"]);
    const token = (await readFile(path.join(home, "admin-token"), "utf8")).trim();
    const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const created = await request(
      `${server.url}/api/v1/tools`,
      "POST",
      auth,
      JSON.stringify({ name: "clustered" }),
    );
    expect(created.status).toBe(201);
    const tool = JSON.parse(created.body) as { name: string; webhook_secret: string };

    const deliver = (n: number, key: string) => {
      const sha = n.toString(16).padStart(40, "d");
      return request(
        `${server!.url}/hooks/gitlab/${tool.name}`,
        "POST",
        {
          "content-type": "application/json",
          "x-gitlab-event": "Push Hook",
          "x-gitlab-token": tool.webhook_secret,
          "idempotency-key": key,
        },
        JSON.stringify({ ...pushHook, after: sha, checkout_sha: sha }),
      );
    };
    // 20 deliveries, each sent twice at once (a redelivery racing the first, likely on the other worker).
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => [deliver(i + 1, `k-${i}`), deliver(i + 1, `k-${i}`)]).flat(),
    );
    expect(new Set(answers.map((a) => a.process))).toEqual(new Set(["1", "2"]));
    const accepted = answers
      .filter((a) => a.status === 202)
      .map((a) => (JSON.parse(a.body) as { build_id: string }).build_id);
    expect(accepted).toHaveLength(20);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(20);
    const builds = await request(`${server.url}/api/v1/tools/${tool.name}/builds?limit=100`, "GET", auth);
    const ids = (JSON.parse(builds.body) as { id: string }[]).map((b) => b.id);
    expect(ids.sort()).toEqual([...accepted].sort());

    // A worker killed the way the OOM killer would: another takes its place and answers.
    const [victim] = await workerPids(primary);
    process.kill(victim!, "SIGKILL");
    const seen = new Set<string>();
    await waitFor(
      "a third api process answering",
      async () => {
        const health = await request(`${server!.url}/api/v1/healthz`, "GET", {}).catch(() => undefined);
        if (health?.status === 200 && health.process) seen.add(health.process);
        return seen.has("3") ? true : undefined;
      },
      30_000,
      100,
    );
    const workers = await workerPids(primary);
    expect(workers).toHaveLength(2);
    expect(workers).not.toContain(victim);

    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    for (const pid of workers) expect(await cmdlineOf(pid)).toBeUndefined();
    expect(await childrenOf(home, [ports.redis, ports.registry])).toEqual([]);
  }, 180_000);
});
