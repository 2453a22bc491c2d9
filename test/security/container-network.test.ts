import path from "node:path";
import { describe, expect, it } from "vitest";
import { containerOwner } from "../../services/adapters/podman/confinement.js";
import { podman } from "../../services/adapters/podman/podman.js";
import { git, gitRepo, pythonApp, pythonServer, viaProxy, waitFor } from "../helpers/apps.js";
import { buildIdFrom, clientOf, localServerForFile } from "../helpers/local-server.js";

/**
 * A hostile tenant on the local profile tries to reach another tool's containers directly, at their
 * podman address, instead of through the front proxy; and the host's loopback services (Redis, the
 * registry, the API) through its network's gateway. From its webservice, from a job and from a build.
 * Real server, Redis, registry, podman and git; the CLI from dist/ (`npm run build` first).
 */
const repoRoot = path.resolve(import.meta.dirname, "../..");
const ATTACKER = "netsec-x";
const VICTIM = "netsec-y";
const SECRET = "only for netsec-y's visitors";

/**
 * `python3 probe.py <host> <port>` prints `connected` or `blocked: <why>`; the attacker's webservice
 * answers the same at /probe/<host>/<port>, and /raw says whether it may open a raw socket (with
 * which it could forge packets to the host's 127.0.0.1 past the bridge).
 */
const PROBE = `import socket, sys

def probe(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        return "connected"
    except OSError as e:
        return "blocked: %r" % e

def raw():
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
        return "raw socket allowed"
    except OSError as e:
        return "raw socket denied: %r" % e

if __name__ == "__main__":
    print("probe %s:%s %s" % (sys.argv[1], sys.argv[2], probe(sys.argv[1], sys.argv[2])), flush=True)
`;

function attackerApp(): Record<string, string> {
  return {
    "probe.py": PROBE,
    "app.py": pythonServer(
      `(200, (probe.raw() if self.path == "/raw" else probe.probe(*self.path.split("/")[2:4]) if self.path.startswith("/probe/") else "attacker").encode())`,
      "import probe",
    ),
  };
}

/**
 * A pip build backend in the source tree: `pip install .` runs it in the build container, so a push
 * runs the tenant's code at build time. It probes, then fails the build so that pip shows its output.
 */
function buildProbe(host: string, port: number): Record<string, string> {
  return {
    "pyproject.toml": `[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n`,
    "backend.py": `import probe

def get_requires_for_build_wheel(config_settings=None):
    print("build-probe " + probe.probe(${JSON.stringify(host)}, ${port}), flush=True)
    raise RuntimeError("stopping the build after the probe")
`,
  };
}

const local = localServerForFile({ name: "netsec", env: { SLIPWAY_HEALTH_TIMEOUT_S: "30" } }, [
  ATTACKER,
  VICTIM,
]);
const client = clientOf(() => local.server);
const { api, cli } = client;

interface Inspected {
  NetworkSettings: { Networks: Record<string, { IPAddress: string; Gateway: string }> };
}

/** The tool's web container: its podman network(s), address and container port. */
async function webContainer(tool: string) {
  const owner = containerOwner(local.home, "web");
  const ids = await podman(
    ["ps", "-q", "--filter", `label=io.slipway.owner=${owner}`, "--filter", `label=io.slipway.tool=${tool}`],
    { repoRoot },
  );
  const id = ids.stdout.trim().split("\n")[0]!;
  const [inspected] = JSON.parse((await podman(["inspect", id], { repoRoot })).stdout) as Inspected[];
  const networks = Object.keys(inspected!.NetworkSettings.Networks);
  const net = inspected!.NetworkSettings.Networks[networks[0]!]!;
  const published = await podman(["port", id], { repoRoot });
  const containerPort = Number(/^(\d+)\/tcp/.exec(published.stdout.trim())?.[1]);
  return { networks, ip: net.IPAddress, gateway: net.Gateway, port: containerPort };
}

async function deploy(tool: string, files: Record<string, string>) {
  const created = await api<{ token: string; git_url: string }>("/api/v1/tools", {
    method: "POST",
    body: JSON.stringify({ name: tool }),
  });
  const url = created.git_url.replace("http://", `http://user:${created.token}@`);
  const repo = await gitRepo(files);
  const out = await git(repo.dir, ["push", url, "main"]);
  const build = await client.buildDone<{ status: string; release_id: string | null }>(buildIdFrom(out));
  expect(build.status, JSON.stringify(build)).toBe("success");
  await waitFor(
    `${tool} live`,
    async () => {
      const r = await api<{ status: string }>(`/api/v1/tools/${tool}/releases/${build.release_id}`);
      if (r.status === "failed") throw new Error(JSON.stringify(r));
      return r.status === "live" ? r : undefined;
    },
    180_000,
  );
  return { repo, url };
}

describe("network isolation between tools (local profile)", () => {
  let attacker: Awaited<ReturnType<typeof deploy>>;
  let victim: Awaited<ReturnType<typeof webContainer>>;
  const probeVia = async (target: string, targetPort: number) => {
    const r = await viaProxy(local.port, ATTACKER, `/probe/${target}/${targetPort}`);
    expect(r.status, r.body).toBe(200);
    return r.body;
  };

  it("puts each tool's webservice on a network of its own, and the proxy still serves both", async () => {
    await deploy(VICTIM, pythonApp(SECRET));
    attacker = await deploy(ATTACKER, attackerApp());
    victim = await webContainer(VICTIM);
    const own = await webContainer(ATTACKER);
    const net = containerOwner(local.home, "net");
    expect(victim.networks).toEqual([`${net}-${VICTIM}`]);
    expect(own.networks).toEqual([`${net}-${ATTACKER}`]);
    expect(await viaProxy(local.port, VICTIM)).toEqual({ status: 200, body: SECRET });
    expect(await viaProxy(local.port, ATTACKER)).toEqual({ status: 200, body: "attacker" });
    // The network is labelled with this server's owner, so only this server (or its tests) removes it.
    const listed = await podman(["network", "ls", "--quiet", "--filter", `label=io.slipway.owner=${net}`], {
      repoRoot,
    });
    expect(listed.stdout.split("\n").filter(Boolean).sort()).toEqual([
      `${net}-${ATTACKER}`,
      `${net}-${VICTIM}`,
    ]);
  }, 900_000);

  it("a webservice cannot connect to another tool's container address, only to its own", async () => {
    // The address is right: the host reaches the victim there.
    const direct = await fetch(`http://${victim.ip}:${victim.port}/`);
    expect(await direct.text()).toBe(SECRET);
    expect(await probeVia(victim.ip, victim.port)).toMatch(/^blocked/);
    const own = await webContainer(ATTACKER);
    expect(await probeVia(own.ip, own.port)).toBe("connected");
  }, 60_000);

  it("a webservice cannot reach the host's loopback services through its gateway, nor forge raw packets", async () => {
    const own = await webContainer(ATTACKER);
    for (const hostPort of [local.config.redisPort, local.config.registryPort, local.port]) {
      expect(await probeVia(own.gateway, hostPort), `gateway port ${hostPort}`).toMatch(/^blocked/);
    }
    expect((await viaProxy(local.port, ATTACKER, "/raw")).body).toMatch(/^raw socket denied/);
  }, 60_000);

  it("a job of the tool cannot connect to another tool's container either", async () => {
    const ran = await cli(
      ["jobs", "run", "probe", "--command", `python3 probe.py ${victim.ip} ${victim.port}`, "--wait"],
      { tool: ATTACKER },
    );
    expect(ran.stdout, ran.stderr).toMatch(
      new RegExp(`probe ${victim.ip.replace(/\./g, "\\.")}:${victim.port} blocked`),
    );
    expect((await cli(["jobs", "delete", "probe"], { tool: ATTACKER })).code).toBe(0);
  }, 180_000);

  it("a build of the tool cannot connect to another tool's container either", async () => {
    await attacker.repo.commit(
      { ...attackerApp(), ...buildProbe(victim.ip, victim.port) },
      "probe at build time",
    );
    const out = await git(attacker.repo.dir, ["push", attacker.url, "main"]);
    const id = buildIdFrom(out);
    const build = await client.buildDone<{ status: string }>(id);
    expect(build.status).toBe("failure");
    const log = (await api<{ lines: string[] }>(`/api/v1/builds/${id}/logs`)).lines.join("\n");
    expect(log).toMatch(/build-probe blocked/);
    expect(log).not.toMatch(/build-probe connected/);
    // The failed build left the live release alone.
    expect(await viaProxy(local.port, ATTACKER)).toEqual({ status: 200, body: "attacker" });
  }, 600_000);
});
