import { rm } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podman } from "../services/adapters/podman/podman.js";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, pythonServer, viaProxy, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";

/**
 * Releases on the local profile, as a maintainer meets them: slipway.yaml's run settings, the Procfile's
 * release phase, failed rollouts that keep the old release serving, rollback without a build, the
 * deploy policy and config errors. One server, one tool, four real builds.
 */
const repoRoot = path.resolve(import.meta.dirname, "..");
const TOOL = "rel-app";
let home: string;
let server: RunningServer;
let port: number;
let registryPort: number;

const client = clientOf(() => server);
const { api } = client;
const cli = (args: string[]) => client.cli(args, { tool: TOOL });

interface BuildView {
  id: string;
  status: string;
  reason: string | null;
  phase: string | null;
  release_id: string | null;
  log_tail: string[];
}

interface ReleaseView {
  id: string;
  status: string;
  live: boolean;
  commit: string;
  image_digest: string;
  trigger: { kind: string };
  rollback_of: string | null;
  reason: string | null;
  last_probe: string | null;
  log_tail: string[];
}

const buildDone = (id: string) => client.buildDone<BuildView>(id);

async function releaseSettled(id: string): Promise<ReleaseView> {
  return waitFor(
    `release ${id}`,
    async () => {
      const r = await api<ReleaseView>(`/api/v1/tools/${TOOL}/releases/${id}`);
      return r.status !== "deploying" ? r : undefined;
    },
    180_000,
  );
}

const APP_PY = pythonServer(
  `(HEALTH, b"health") if self.path == "/health" else (200, MESSAGE.encode())`,
  `
MESSAGE = open("message.txt").read().strip()
HEALTH = int(open("health.txt").read().strip())
`,
);

const RELEASE_PY = `import sys
message = open("message.txt").read().strip()
code = int(open("release-exit.txt").read().strip())
print(f"release phase of {message}: migrating (PORT={__import__('os').environ.get('PORT')})", flush=True)
if code:
    print(f"migration failed: table {message} is locked", flush=True)
sys.exit(code)
`;

const SLIPWAY_YAML = `config_version: v1beta1
components:
  web:
    run:
      command: web
      port: 8080
      memory: 256Mi
      health_check_http: /health
`;

/** One version of the app: what it answers, its health answer and its release phase's exit code. */
function version(message: string, health = 200, releaseExit = 0): Record<string, string> {
  return {
    "message.txt": `${message}\n`,
    "health.txt": `${health}\n`,
    "release-exit.txt": `${releaseExit}\n`,
  };
}

let repo: Awaited<ReturnType<typeof gitRepo>>;
let pushUrl: string;

/** Digests of the tool's images in podman's store (pulled by digest from the server's registry). */
async function localDigests(): Promise<string[]> {
  const listed = await podman(
    ["images", "--format", "{{.Digest}}", "--filter", `reference=127.0.0.1:${registryPort}/tool-${TOOL}/*`],
    { repoRoot },
  );
  return [...new Set(listed.stdout.split("\n").filter(Boolean))];
}

async function pushMain(): Promise<string> {
  return git(repo.dir, ["push", pushUrl, "main"]);
}

beforeAll(async () => {
  let config: { registryPort: number };
  ({ server, port, home, config } = await startLocalServer({
    name: "releases",
    env: {
      SLIPWAY_HEALTH_TIMEOUT_S: "8",
      // Two releases that went live keep their images: enough to see retention delete the failed ones'.
      SLIPWAY_KEEP_RELEASES: "2",
    },
  }));
  registryPort = config.registryPort;
  const tool = await api<{ git_url: string; token: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name: TOOL }),
  });
  pushUrl = tool.git_url.replace("http://", `http://user:${tool.token}@`);
}, 1_200_000);

afterAll(async () => {
  await server?.close();
  await removeToolContainers(TOOL);
  if (home) await rm(home, { recursive: true, force: true });
});

describe("releases, release phase and rollback on the local profile", () => {
  let v1: ReleaseView;
  let v3: ReleaseView;
  let v4: ReleaseView;

  it("runs the Procfile release phase before the rollout, on slipway.yaml's port with its HTTP health check", async () => {
    repo = await gitRepo({
      "app.py": APP_PY,
      "release.py": RELEASE_PY,
      Procfile: "web: python3 app.py\nrelease: python3 release.py\n",
      "slipway.yaml": SLIPWAY_YAML,
      ...version("v1"),
    });
    const build = await buildDone(buildIdFrom(await pushMain()));
    expect(build.status, JSON.stringify(build)).toBe("success");
    v1 = await releaseSettled(build.release_id!);
    expect(v1.status, JSON.stringify(v1)).toBe("live");
    expect(v1.last_probe).toBe("HTTP 200 from /health");
    // run.memory from slipway.yaml is the container's limit.
    const inspected = await podman(
      ["ps", "--filter", `label=io.slipway.release=${v1.id}`, "--format", "{{.ID}}"],
      { repoRoot },
    );
    const memory = await podman(["inspect", "--format", "{{.HostConfig.Memory}}", inspected.stdout.trim()], {
      repoRoot,
    });
    expect(memory.stdout.trim()).toBe(String(256 * 1024 * 1024));
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "v1" });
    const log = await api<{ lines: string[] }>(`/api/v1/builds/${build.id}/logs`);
    expect(log.lines).toContain("===> CONFIG slipway.yaml: components web");
    expect(log.lines).toContain("===> RELEASE PHASE: running the Procfile's release process");
    // The release phase gets the web process's env: PORT is slipway.yaml's run.port.
    expect(log.lines).toContain("  | release phase of v1: migrating (PORT=8080)");
  });

  it("a failing release phase blocks the rollout, shows its output, and the old release keeps serving", async () => {
    await repo.commit(version("v2", 200, 3), "v2 with a failing migration");
    const build = await buildDone(buildIdFrom(await pushMain()));
    expect(build).toMatchObject({
      status: "failure",
      phase: "deploy",
      reason: "deploy failed: release phase exited 3; the previous release keeps serving",
    });
    const r = await releaseSettled(build.release_id!);
    expect(r.status).toBe("failed");
    expect(r.reason).toBe("release phase exited 3; the previous release keeps serving");
    expect(r.log_tail).toContain("migration failed: table v2 is locked");
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "v1" });

    const shown = await cli(["releases"]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`${r.id}  failed`);
    expect(shown.stdout).toContain("    release phase exited 3; the previous release keeps serving");
    expect(shown.stdout).toContain("    | migration failed: table v2 is locked");
  });

  it("a failing health_check_http keeps the old release serving; slipway releases shows the probe's result", async () => {
    await repo.commit(version("v3", 500), "v3 with a broken health endpoint");
    const build = await buildDone(buildIdFrom(await pushMain()));
    expect(build).toMatchObject({ status: "failure", phase: "deploy" });
    const r = await releaseSettled(build.release_id!);
    v3 = r;
    expect(r.status).toBe("failed");
    expect(r.last_probe).toBe("HTTP 500 from /health");
    expect(r.reason).toBe(
      "web process did not pass its health check within 8 s (last probe: HTTP 500 from /health); the previous release keeps serving",
    );
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "v1" });
    const shown = await cli(["releases"]);
    expect(shown.stdout).toContain(`${r.id}  failed`);
    expect(shown.stdout).toContain("(last probe: HTTP 500 from /health)");
    const listed = JSON.parse((await cli(["releases", "--json"])).stdout) as ReleaseView[];
    expect(listed.find((x) => x.id === r.id)?.last_probe).toBe("HTTP 500 from /health");
  });

  it("rollback brings the previous release back without a build", async () => {
    await repo.commit(version("v4"), "v4");
    const build = await buildDone(buildIdFrom(await pushMain()));
    v4 = await releaseSettled(build.release_id!);
    expect(v4.status).toBe("live");
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "v4" });
    const buildsBefore = await api<unknown[]>(`/api/v1/tools/${TOOL}/builds`);

    const started = Date.now();
    const rolled = await cli(["rollback", "--json"]);
    const seconds = (Date.now() - started) / 1000;
    expect(rolled.code, rolled.stderr + rolled.stdout).toBe(0);
    const r = JSON.parse(rolled.stdout) as ReleaseView & { created_at: string; finished_at: string };
    const serverSide = (Date.parse(r.finished_at) - Date.parse(r.created_at)) / 1000;
    console.log(
      `rollback to the previous release: live ${serverSide.toFixed(2)} s after the request (server), ${seconds.toFixed(2)} s for \`slipway rollback\` (CLI wall clock)`,
    );
    expect(r).toMatchObject({ status: "live", rollback_of: v1.id, commit: v1.commit });
    expect(r.image_digest).toBe(v1.image_digest);
    expect(r.trigger.kind).toBe("rollback");
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "v1" });
    expect(await api<unknown[]>(`/api/v1/tools/${TOOL}/builds`)).toHaveLength(buildsBefore.length);

    // The one rolled back from is the next default target: rollback twice undoes the first.
    const list = await api<ReleaseView[]>(`/api/v1/tools/${TOOL}/releases`);
    expect(list[0]).toMatchObject({ id: r.id, live: true });
    expect(list.find((x) => x.id === v4.id)?.status).toBe("superseded");
  });

  it("images beyond SLIPWAY_KEEP_RELEASES are deleted from the registry and from podman's store; rollback to one says so", async () => {
    // Live now: the rollback (v1's image) and v4 before it are the two kept; v2 and v3 are older.
    const gone = await waitFor(
      "v3's image deleted",
      async () => {
        const r = await api<ReleaseView & { image_deleted: boolean }>(
          `/api/v1/tools/${TOOL}/releases/${v3.id}`,
        );
        return r.image_deleted ? r : undefined;
      },
      30_000,
    );
    expect(gone.image_deleted).toBe(true);
    // The copies podman pulled to run (or release-phase) v2 and v3 go too: only the kept ones stay.
    const kept = [v1.image_digest, v4.image_digest].sort();
    const local = await waitFor(
      "podman to hold only the kept releases' images",
      async () => {
        const digests = (await localDigests()).sort();
        return digests.join() === kept.join() ? digests : undefined;
      },
      30_000,
    ).catch(async () => (await localDigests()).sort());
    expect(local).toEqual(kept);
    const v1Now = await api<{ image_deleted: boolean }>(`/api/v1/tools/${TOOL}/releases/${v1.id}`);
    expect(v1Now.image_deleted).toBe(false);
    const refused = await cli(["rollback", v3.id]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      `release ${v3.id} (commit ${v3.commit.slice(0, 12)}) cannot be rolled back to: its image was deleted`,
    );
    expect(refused.stderr).toContain(`slipway build start --ref ${v3.commit}`);
  });

  it("rollback to an unknown or live release says so", async () => {
    const unknown = await cli(["rollback", "nosuchrelease"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("no release nosuchrelease for rel-app");
    const live = (await api<ReleaseView[]>(`/api/v1/tools/${TOOL}/releases`))[0]!;
    const again = await cli(["rollback", live.id]);
    expect(again.stderr).toContain(`release ${live.id} is already live`);
  });

  it("an invalid slipway.yaml fails the build in phase config with file:line and field", async () => {
    await repo.commit(
      { "slipway.yaml": SLIPWAY_YAML.replace("port: 8080", 'port: "eighty"') },
      "broken config",
    );
    const build = await buildDone(buildIdFrom(await pushMain()));
    expect(build.status).toBe("failure");
    expect(build.phase).toBe("config");
    expect(build.reason).toBe(
      'config failed: invalid slipway.yaml: slipway.yaml:6:7: components.web.run.port: expected a number from 1 to 65535, got "eighty"',
    );
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "v1" });
  });

  it("deploy.tags v* in slipway.yaml: a branch push is not deployed, and the next one is ignored with the reason", async () => {
    await repo.commit(
      { "slipway.yaml": `${SLIPWAY_YAML}deploy: { branches: [], tags: ["v*"] }\n` },
      "deploy only tags",
    );
    const build = await buildDone(buildIdFrom(await pushMain()));
    expect(build.status).toBe("cancelled");
    expect(build.reason).toBe(
      "not deployed: branch main ignored: deploy.branches is [] in slipway.yaml, so no branch deploys",
    );
    await repo.commit({ "message.txt": "v5\n" }, "v5 on main");
    const out = await pushMain();
    expect(out).toContain(
      "slipway: nothing to build for refs/heads/main: branch main ignored: deploy.branches is [] in slipway.yaml, so no branch deploys",
    );
    expect(await viaProxy(port, TOOL)).toEqual({ status: 200, body: "v1" });
  });
});
