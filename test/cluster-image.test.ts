import { chmod, cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podman } from "../services/adapters/podman/podman.js";
import { ensureStack } from "../services/adapters/stack/index.js";
import type { Stack } from "../services/domain/lifecycle/types.js";
import { memoryLogger } from "../services/platform/logger.js";
import { run } from "../services/platform/process.js";
import { FIXTURES, config } from "./helpers/buildpack-build.js";
import { startRegistry, type TestRegistry } from "./helpers/registry.js";
import { TEST_STACK_HOME } from "./helpers/stack.js";

/**
 * `slipway stack push` (issue 15): the cluster's build image is the stack's build image plus
 * slipway-lifecycle's /cnb as a layer, pushed to a real docker-registry. Pulled back with podman, it
 * runs `slipway-lifecycle` by name with nothing of this checkout mounted, as a Task step would.
 */
const LONG = 900_000;
const repoRoot = config.repoRoot;

let stack: Stack;
let registry: TestRegistry;
let root: string;

beforeAll(async () => {
  stack = await ensureStack(config, memoryLogger());
  registry = await startRegistry();
  await mkdir("/var/tmp/slipway-test-work", { recursive: true });
  root = await mkdtemp("/var/tmp/slipway-test-work/ci-");
}, LONG);

afterAll(async () => {
  await registry?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** The real CLI, with the registry as an operator would give it and the tests' shared stack. */
function stackPush(args: readonly string[], withRegistry = true) {
  return run(process.execPath, [path.join(repoRoot, "dist/services/main.js"), "stack", "push", ...args], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      SLIPWAY_HOME: path.join(root, "home"),
      SLIPWAY_STACK_HOME: TEST_STACK_HOME,
      ...(withRegistry
        ? {
            SLIPWAY_REGISTRY_URL: registry.url,
            SLIPWAY_REGISTRY_USERNAME: registry.username,
            SLIPWAY_REGISTRY_PASSWORD: registry.password,
          }
        : {}),
    },
    allowFailure: true,
  });
}

interface Pushed {
  build_image: string;
  build_digest: string;
  build_blobs_uploaded: number;
  run_image: string;
}

const pull = (ref: string) =>
  podman(
    ["pull", "--quiet", "--tls-verify=false", "--creds", `${registry.username}:${registry.password}`, ref],
    {
      repoRoot,
    },
  );

describe("slipway stack push", () => {
  it(
    "pushes a build image that runs slipway-lifecycle on its own, and the same contents again to the same digest with nothing sent",
    async () => {
      const first = await stackPush(["--json"]);
      expect(first.code, first.stderr).toBe(0);
      const pushed = JSON.parse(first.stdout) as Pushed;
      expect(pushed.build_image).toMatch(new RegExp(`^${registry.host}/slipway/build:[0-9a-f]{16}$`));
      expect(pushed.build_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(pushed.run_image).toBe(`${registry.host}/slipway/run:${stack.id}`);
      // The stack's layer, /cnb and the config at least.
      expect(pushed.build_blobs_uploaded).toBeGreaterThanOrEqual(3);
      expect(first.stderr).not.toContain(registry.password);

      // Plain output is the settings to add to the server's environment.
      const again = await stackPush([]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout.trim().split("\n")).toEqual([
        `SLIPWAY_TEKTON_BUILD_IMAGE=${pushed.build_image}`,
        `SLIPWAY_TEKTON_RUN_IMAGE=${pushed.run_image}`,
      ]);
      const third = JSON.parse((await stackPush(["--json"])).stdout) as Pushed;
      expect(third.build_digest).toBe(pushed.build_digest);
      expect(third.build_image).toBe(pushed.build_image);
      expect(third.build_blobs_uploaded).toBe(0);

      await pull(pushed.build_image);
      await pull(pushed.run_image);
      try {
        const inspected = await podman(
          ["image", "inspect", "--format", "{{.Config.User}} {{json .Config.Env}}", pushed.build_image],
          { repoRoot },
        );
        expect(inspected.stdout).toContain("1000:1000");
        expect(inspected.stdout).toMatch(/PATH=\/cnb\/bin:/);

        const app = path.join(root, "app");
        const layers = path.join(root, "layers");
        await cp(path.join(FIXTURES, "nodejs"), app, { recursive: true });
        await mkdir(layers);
        await run("chown", ["-R", `${stack.uid}:${stack.gid}`, app, layers]);
        await chmod(root, 0o755);
        // No --user, no entrypoint, no /cnb mount: the image's own user and PATH find the program.
        const detect = await podman(
          [
            "run",
            "--rm",
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--network",
            "none",
            "--mount",
            `type=bind,source=${app},destination=/workspace`,
            "--mount",
            `type=bind,source=${layers},destination=/layers`,
            "--env",
            "SLIPWAY_APP_DIR=/workspace",
            "--env",
            "SLIPWAY_LAYERS_DIR=/layers",
            "--env",
            "SOURCE_DATE_EPOCH=1700000000",
            "--env",
            "SLIPWAY_TOOL=demo",
            "--env",
            "SLIPWAY_COMPONENT=web",
            pushed.build_image,
            "slipway-lifecycle",
            "detect",
          ],
          { repoRoot, allowFailure: true },
        );
        expect(detect.code, `${detect.stdout}${detect.stderr}`).toBe(0);
        expect(detect.stdout).toContain("slipway/nodejs");

        const user = await podman(["run", "--rm", "--network", "none", pushed.build_image, "id", "-u"], {
          repoRoot,
        });
        expect(user.stdout.trim()).toBe("1000");
      } finally {
        for (const ref of [pushed.build_image, pushed.run_image])
          await podman(["rmi", "-f", ref], { repoRoot, allowFailure: true });
      }
    },
    LONG,
  );

  it(
    "--suite trixie pushes the trixie stack's images (Python 3.13) and prints them as the _TRIXIE settings; an unknown suite is refused",
    async () => {
      const trixie = await stackPush(["--suite", "trixie"]);
      expect(trixie.code, trixie.stderr).toBe(0);
      const lines = trixie.stdout.trim().split("\n");
      expect(lines).toEqual([
        expect.stringMatching(
          new RegExp(`^SLIPWAY_TEKTON_BUILD_IMAGE_TRIXIE=${registry.host}/slipway/build:[0-9a-f]{16}$`),
        ),
        expect.stringMatching(
          new RegExp(`^SLIPWAY_TEKTON_RUN_IMAGE_TRIXIE=${registry.host}/slipway/run:\\S+$`),
        ),
      ]);
      const buildImage = lines[0]!.split("=")[1]!;
      await pull(buildImage);
      try {
        const python = await podman(
          ["run", "--rm", "--network", "none", buildImage, "python3", "--version"],
          {
            repoRoot,
          },
        );
        expect(python.stdout).toMatch(/^Python 3\.13\./);
      } finally {
        await podman(["rmi", "-f", buildImage], { repoRoot, allowFailure: true });
      }
      const unknown = await stackPush(["--suite", "sid"]);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toContain(
        "--suite sid: Slipway makes stacks from bookworm (Python 3.11), trixie (Python 3.13)",
      );
    },
    LONG,
  );

  it("says which setting is missing when no registry is given", async () => {
    const r = await stackPush(["--json"], false);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("SLIPWAY_REGISTRY_URL");
  });
});
