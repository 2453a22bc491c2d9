import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { stringify } from "yaml";
import { loadConfig } from "../services/platform/env.js";
import { errorMessage } from "../services/platform/errors.js";
import { freePort } from "../services/platform/net.js";
import { startServer, type Role } from "../services/roles/server/server.js";
import { capturedLogger, startLocalServer } from "./helpers/local-server.js";

/**
 * Issue 13 item 1: the runtime is chosen once, as a profile. A server on the Kubernetes profile makes
 * none of podman's runtime pieces (web containers, their log followers, job containers): its
 * webservices and jobs are the cluster's. The podman profile still makes them, which shows the
 * counting below sees them. An unknown profile stops the start before anything runs.
 */
const { made, counted } = vi.hoisted(() => {
  const made = { podmanRuntime: 0, logFollower: 0, podmanJobs: 0 };
  /** The class itself, counting in `made[key]` each instance made of it. */
  const counted = <C extends object>(cls: C, key: keyof typeof made): C =>
    new Proxy(cls, {
      construct(target, args, newTarget) {
        made[key]++;
        return Reflect.construct(target as new (...a: unknown[]) => object, args, newTarget) as object;
      },
    });
  return { made, counted };
});

vi.mock("../services/adapters/podman/runtime.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../services/adapters/podman/runtime.js")>();
  return { ...real, PodmanRuntime: counted(real.PodmanRuntime, "podmanRuntime") };
});
vi.mock("../services/adapters/podman/web-log-follower.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../services/adapters/podman/web-log-follower.js")>();
  return { ...real, LogFollowingRuntime: counted(real.LogFollowingRuntime, "logFollower") };
});
vi.mock("../services/adapters/podman/jobs-runtime.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../services/adapters/podman/jobs-runtime.js")>();
  return { ...real, PodmanJobsRuntime: counted(real.PodmanJobsRuntime, "podmanJobs") };
});

function resetCounts(): void {
  made.podmanRuntime = 0;
  made.logFollower = 0;
  made.podmanJobs = 0;
}

describe("runtime profiles", () => {
  let tmp: string;
  let kubeconfig: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "slipway-profiles-"));
    kubeconfig = path.join(tmp, "kubeconfig");
    // Nothing listens there: the cluster is "down", which the server starts through (docs/kubernetes.md).
    const apiPort = await freePort();
    await writeFile(
      kubeconfig,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "down", cluster: { server: `https://127.0.0.1:${apiPort}` } }],
        users: [{ name: "slipway", user: { token: "slipway-token-0123456789" } }],
        contexts: [{ name: "down", context: { cluster: "down", user: "slipway" } }],
        "current-context": "down",
      }),
    );
  });

  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function startRole(role: Role, env: Record<string, string>) {
    resetCounts();
    const captured = capturedLogger("info");
    const local = await startLocalServer({
      name: "profiles",
      role,
      ready: false,
      logger: captured.logger,
      env,
    });
    return {
      ...local,
      log: captured.text,
      stop: async () => {
        await local.server.close();
        await rm(local.home, { recursive: true, force: true });
      },
    };
  }

  const kubernetesEnv = () => ({
    SLIPWAY_RUNTIME: "kubernetes",
    SLIPWAY_KUBECONFIG: kubeconfig,
    SLIPWAY_INGRESS_DOMAIN: "tools.example",
    SLIPWAY_KUBE_RETRY_MAX_S: "2",
  });

  it("a Kubernetes deployer makes no podman runtime, podman log follower or podman jobs runtime", async () => {
    const s = await startRole("deployer", kubernetesEnv());
    try {
      // It is the cluster's deployer that was made (it says where it deploys to).
      expect(s.log()).toContain("deploying to Kubernetes");
      expect(made).toEqual({ podmanRuntime: 0, logFollower: 0, podmanJobs: 0 });
    } finally {
      await s.stop();
    }
  });

  it("a Kubernetes API reads webservices from the cluster, not from podman", async () => {
    const s = await startRole("api", kubernetesEnv());
    try {
      const health = (await (await fetch(`${s.server.url}/api/v1/healthz`)).json()) as {
        kubernetes?: { server: string | null };
      };
      expect(health.kubernetes?.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(made).toEqual({ podmanRuntime: 0, logFollower: 0, podmanJobs: 0 });
    } finally {
      await s.stop();
    }
  });

  it("a podman deployer makes its podman runtime, log follower and jobs runtime", async () => {
    const s = await startRole("deployer", {});
    try {
      expect(made).toEqual({ podmanRuntime: 1, logFollower: 1, podmanJobs: 1 });
    } finally {
      await s.stop();
    }
  });

  // Each name is checked where it is registered (profiles/index.ts, build-backends/index.ts), not in
  // env.ts, so a new runtime or build backend is its folder and one line; the operator sees the same stop.
  it.each([
    ["SLIPWAY_RUNTIME", "nomad", 'no runtime profile "nomad" (SLIPWAY_RUNTIME); known: podman, kubernetes'],
    [
      "SLIPWAY_BUILD_BACKEND",
      "jenkins",
      'no build backend "jenkins" (SLIPWAY_BUILD_BACKEND); known: podman, tekton, pipelines',
    ],
  ])(
    "an unknown %s stops the start with the known names, before anything runs",
    async (name, value, message) => {
      const home = path.join(tmp, `unknown-${value}-home`);
      const env = {
        SLIPWAY_HOME: home,
        SLIPWAY_PORT: String(await freePort()),
        SLIPWAY_REDIS_PORT: String(await freePort()),
        SLIPWAY_REGISTRY_PORT: String(await freePort()),
        [name]: value,
      };
      const outcome = await startServer(loadConfig(env), capturedLogger("info").logger, "api").then(
        async (s) => {
          await s.close();
          return "started";
        },
        (e: unknown) => errorMessage(e),
      );
      expect(outcome).toBe(message);
      // Nothing ran: not even the home folder was made.
      await expect(stat(home)).rejects.toThrow(/ENOENT/);
    },
  );
});
