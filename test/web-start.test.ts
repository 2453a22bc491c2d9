import { randomBytes } from "node:crypto";
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { containerOwner } from "../services/adapters/podman/confinement.js";
import { ToolNetworks } from "../services/adapters/podman/network.js";
import { podman } from "../services/adapters/podman/podman.js";
import { PodmanRuntime } from "../services/adapters/podman/runtime.js";
import { PodmanBuildSandbox } from "../services/adapters/podman/sandbox.js";
import { TransientError } from "../services/platform/errors.js";
import { freePort } from "../services/platform/net.js";
import { run } from "../services/platform/process.js";

// A web process in a real podman container, published on a loopback port Slipway picks itself (no
// `podman port` afterwards): a port another process holds is given up for another, and a leftover
// container of the same name is replaced. The image is a tiny busybox one built here, whose stand-in
// CNB launcher runs its argument; busybox httpd serves a page.
const repoRoot = path.resolve(import.meta.dirname, "..");
const suffix = randomBytes(3).toString("hex");
const home = `/tmp/slipway-web-start-${suffix}`;
const owner = containerOwner(home, "web");
const registry = { host: "registry.invalid:5000", username: "u", password: "p" };
const networks = new ToolNetworks({ repoRoot, owner: containerOwner(home, "net") });
const SERVE = "httpd -f -p 8000 -h /www";

let workDir: string;
let image: string;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), "slipway-web-start-"));
  const root = path.join(workDir, "rootfs");
  for (const dir of ["bin", "etc", "tmp", "www", "cnb/lifecycle"])
    await mkdir(path.join(root, dir), { recursive: true });
  await copyFile("/bin/busybox", path.join(root, "bin", "busybox"));
  for (const applet of ["sh", "sleep", "httpd"]) await symlink("busybox", path.join(root, "bin", applet));
  await writeFile(
    path.join(root, "etc", "passwd"),
    "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n",
  );
  await writeFile(path.join(root, "www", "index.html"), "served\n");
  const launcher = path.join(root, "cnb", "lifecycle", "launcher");
  await writeFile(launcher, '#!/bin/sh\nexec sh -c "$1"\n');
  await chmod(launcher, 0o755);
  const tarball = path.join(workDir, "rootfs.tar");
  await run("tar", ["-C", root, "-cf", tarball, "."]);
  const tag = `localhost/slipway-web-start-test:${suffix}`;
  await podman(["import", "--change", "USER 1000:1000", "--change", "ENV PATH=/bin", tarball, tag], {
    repoRoot,
  });
  // By digest, as releases name their images: the runtime then uses the local copy instead of pulling.
  const digest = await podman(["inspect", "--format", "{{.Digest}}", tag], { repoRoot });
  image = `localhost/slipway-web-start-test@${digest.stdout.trim()}`;
}, 120_000);

afterAll(async () => {
  const left = await podman(["ps", "-aq", "--filter", `name=${owner}`], { repoRoot });
  const ids = left.stdout.split("\n").filter(Boolean);
  if (ids.length) await podman(["rm", "-f", "-t", "0", ...ids], { repoRoot, allowFailure: true });
  await podman(["rmi", "-f", `localhost/slipway-web-start-test:${suffix}`], { repoRoot, allowFailure: true });
  await networks.removeUnused();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** The page at the address, or "" while nothing answers there (bounded: 30 s). */
async function page(port: number): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
    if (res?.ok) return res.text();
    await new Promise((r) => setTimeout(r, 100));
  }
  return "";
}

const spec = (releaseId: string) => ({
  tool: "webstart",
  process: "web",
  releaseId,
  image,
  env: {},
  port: 8000,
  memoryMb: 64,
  cpus: undefined,
  command: SERVE,
});

describe("a web process's container start", () => {
  it("publishes on another loopback port when the one it picked is taken meanwhile", async () => {
    const holder = net.createServer();
    const taken = await new Promise<number>((resolve) =>
      holder.listen(0, "127.0.0.1", () => resolve((holder.address() as net.AddressInfo).port)),
    );
    const picks = [taken];
    const runtime = new PodmanRuntime({
      repoRoot,
      registry,
      namePrefix: owner,
      networks,
      hostPort: () => Promise.resolve(picks.shift() ?? freePort()),
    });
    try {
      const app = await runtime.start(spec("r1"));
      expect(app.address.port).not.toBe(taken);
      expect(await page(app.address.port)).toBe("served\n");
    } finally {
      holder.close();
    }
  }, 120_000);

  it("replaces a container of the same name a cut-short deploy left", async () => {
    const runtime = new PodmanRuntime({ repoRoot, registry, namePrefix: owner, networks });
    const first = await runtime.start(spec("r2"));
    const again = await runtime.start(spec("r2"));
    expect(again.id).not.toBe(first.id);
    expect(await page(again.address.port)).toBe("served\n");
    const listed = (await runtime.list("webstart")).filter((a) => a.releaseId === "r2");
    expect(listed.map((a) => a.id)).toEqual([again.id]);
  }, 120_000);

  // The tool's network is remembered once seen instead of asked for at every start (it was a podman
  // call on the critical path of every deploy and build); one removed behind the server's back, by
  // hand or by another server process deleting the tool, must still be created again on the next start.
  it("creates the tool's network again when it was removed behind the server's back", async () => {
    const runtime = new PodmanRuntime({ repoRoot, registry, namePrefix: owner, networks });
    const first = await runtime.start(spec("r3"));
    await runtime.stop(first.id);
    const network = networks.name("webstart");
    await podman(["network", "rm", "-f", network], { repoRoot });

    const app = await runtime.start(spec("r4"));
    expect(await page(app.address.port)).toBe("served\n");
    expect((await podman(["network", "exists", network], { repoRoot, allowFailure: true })).code).toBe(0);
    await runtime.stop(app.id);

    await podman(["network", "rm", "-f", network], { repoRoot });
    const once = await runtime.runOnce({ ...spec("r5"), env: {} }, "echo once", 60);
    expect(once.code).toBe(0);
    expect(once.tail).toContain("once");

    await podman(["network", "rm", "-f", network], { repoRoot });
    const sandbox = await PodmanBuildSandbox.create(
      { repoRoot, owner: containerOwner(home, "build") },
      { networks, tool: "webstart" },
    ).start({
      name: `${owner}-sandbox`,
      image,
      mounts: [],
      user: "1000:1000",
      memoryMb: 64,
      cpus: 1,
      env: {},
    });
    try {
      const ran = await sandbox.exec(["sh", "-c", "echo built"], {
        env: {},
        workdir: "/tmp",
        onOutput: () => {},
      });
      expect(ran.exitCode).toBe(0);
    } finally {
      await sandbox.close();
    }
  }, 180_000);

  // A release's image (by digest) is pulled by the `podman run` itself; when that pull fails, the deploy
  // must still fail as transient (the queue tries again once the registry is back), naming the image.
  it("fails as transient, naming the image, when a release's image is neither here nor in the registry", async () => {
    const closed = await freePort();
    const down = { host: `127.0.0.1:${closed}`, username: "u", password: "p" };
    const runtime = new PodmanRuntime({ repoRoot, registry: down, namePrefix: owner, networks });
    const missing = `127.0.0.1:${closed}/tool-webstart/web@sha256:${"0".repeat(64)}`;
    const failed = await runtime.start({ ...spec("r6"), image: missing }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(TransientError);
    expect((failed as Error).message).toContain(`cannot pull ${missing}`);
    expect((await runtime.list("webstart")).filter((a) => a.releaseId === "r6")).toEqual([]);
  }, 120_000);
});
