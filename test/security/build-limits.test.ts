import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { podman } from "../../services/adapters/podman/podman.js";
import { git, gitRepo } from "../helpers/apps.js";
import { type Builder, config, startBuilder } from "../helpers/buildpack-build.js";
import { buildIdFrom, clientOf, startLocalServer, type LocalServer } from "../helpers/local-server.js";

// A hostile (or broken) build that eats memory or processes: the real lifecycle in the podman sandbox
// with small limits, so that the tests are quick and the machine is never at risk (the fork bomb runs
// only inside a container with a 64-process pid limit). Both builds would keep their builder slot
// until the build timeout if nothing watched the limits: the hog is restarted by its script, the bomb
// keeps retrying its forks.
let b: Builder;
/** Long enough for the limit to be noticed many times over; what a build held to its timeout gets. */
const TIMEOUT_MS = 120_000;

beforeAll(async () => {
  b = await startBuilder("build-limits");
}, 600_000);

afterAll(async () => {
  await b?.close();
});

/** An app whose project.toml runs one inline buildpack, `me/<id>`, with this bash build script. */
function inlineBuildpack(id: string, script: string): Record<string, string> {
  return {
    "project.toml": [
      "[_]",
      'schema-version = "0.2"',
      "",
      "[[io.buildpacks.group]]",
      `id = "me/${id}"`,
      "  [io.buildpacks.group.script]",
      '  api = "0.10"',
      '  shell = "/bin/bash"',
      `  inline = """\n${script}\n"""`,
      "",
    ].join("\n"),
  };
}

async function leftoverContainers(name: string): Promise<string[]> {
  const r = await podman(["ps", "-a", "--format", "{{.Names}}", "--filter", `name=slipway-test-${name}-`], {
    repoRoot: config.repoRoot,
  });
  return r.stdout.split("\n").filter(Boolean);
}

describe("a build at its container's limits fails at once, saying which limit", () => {
  it(
    "memory hog: `build ran out of memory (limit 128 MiB)`",
    async () => {
      const app = await b.fixture(
        "",
        inlineBuildpack(
          "hog",
          [
            "echo 'hog: allocating'",
            // Restarted whenever the kernel kills it, as a retrying build tool would be.
            "while true; do",
            "  python3 -c 'a = []\nwhile True: a.append(bytearray(1 << 20))' || echo \"hog: killed ($?), again\"",
            "done",
          ].join("\n"),
        ),
        "hog",
      );
      const error = await b.buildError("hog", app, {
        limits: { memoryMb: 128, cpus: 1 },
        timeoutMs: TIMEOUT_MS,
      });
      expect(error.message).toBe("build ran out of memory (limit 128 MiB)");
      expect(error.code).toBe("build_failed");
      expect(error.details).toMatchObject({
        phase: "build",
        buildpack: "me/hog",
        limit: { kind: "memory", limitMb: 128 },
      });
      expect(await leftoverContainers("hog")).toEqual([]);
    },
    TIMEOUT_MS + 60_000,
  );

  it(
    "fork bomb: `build started too many processes (limit 64)`",
    async () => {
      const app = await b.fixture(
        "",
        inlineBuildpack(
          "bomb",
          ["echo 'bomb: forking'", "bomb() { bomb | bomb & }", "bomb", "wait", "sleep 600"].join("\n"),
        ),
        "bomb",
      );
      const error = await b.buildError("bomb", app, {
        limits: { memoryMb: 512, cpus: 1, pids: 64 },
        timeoutMs: TIMEOUT_MS,
      });
      expect(error.message).toBe("build started too many processes (limit 64)");
      expect(error.details).toMatchObject({
        phase: "build",
        buildpack: "me/bomb",
        limit: { kind: "pids", limit: 64 },
      });
      expect(await leftoverContainers("bomb")).toEqual([]);
    },
    TIMEOUT_MS + 60_000,
  );

  it(
    "a build well within its limits is not stopped",
    async () => {
      const app = await b.fixture(
        "",
        inlineBuildpack(
          "modest",
          [
            'python3 -c \'a = bytearray(32 << 20); print("modest: used", len(a) >> 20, "MiB")\'',
            "for i in 1 2 3 4 5; do sleep 0.2 & done; wait",
          ].join("\n"),
        ),
        "modest",
      );
      const { lines } = await b.build("modest", app, { limits: { memoryMb: 128, cpus: 1, pids: 64 } });
      expect(lines).toContain("modest: used 32 MiB");
    },
    TIMEOUT_MS,
  );
});

describe("a build step's process", () => {
  it(
    "runs as the stack's user with no capabilities, no new privileges, a seccomp filter and the sandbox's limits",
    async () => {
      const app = await b.fixture(
        "",
        inlineBuildpack(
          "who",
          [
            'echo "who: uid $(id -u) gid $(id -g)"',
            "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | sed 's/^/who: /'",
            'echo "who: pids.max $(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)"',
          ].join("\n"),
        ),
        "who",
      );
      const { lines } = await b.build("who", app, { limits: { memoryMb: 256, cpus: 1, pids: 64 } });
      const said = lines.filter((l) => l.startsWith("who: ")).map((l) => l.replace(/\s+/g, " "));
      expect(said).toEqual([
        "who: uid 1000 gid 1000",
        "who: CapEff: 0000000000000000",
        "who: CapBnd: 0000000000000000",
        "who: NoNewPrivs: 1",
        "who: Seccomp: 2",
        "who: pids.max 64",
      ]);
    },
    TIMEOUT_MS,
  );
});

describe("on a server, the build record tells the maintainer", () => {
  let local: LocalServer | undefined;
  const client = clientOf(() => local!.server);

  afterAll(async () => {
    await local?.server.close();
    if (local) await rm(local.home, { recursive: true, force: true });
  });

  it(
    "`git push` of a memory hog: `build list` shows `build ran out of memory (limit 256 MiB)`",
    async () => {
      local = await startLocalServer({
        name: "build-limits",
        env: { SLIPWAY_BUILD_MEMORY_MB: "256", SLIPWAY_BUILD_TIMEOUT_S: String(TIMEOUT_MS / 1000) },
      });
      const tool = await client.api<{ name: string; token: string; git_url: string }>("/api/v1/tools", {
        method: "POST",
        body: JSON.stringify({ name: "hog" }),
      });
      const repo = await gitRepo(
        inlineBuildpack(
          "hog",
          `while true; do python3 -c 'a = []\nwhile True: a.append(bytearray(1 << 20))' || echo again; done`,
        ),
      );
      try {
        const pushed = await git(repo.dir, [
          "push",
          tool.git_url.replace("http://", `http://u:${tool.token}@`),
          "main",
        ]);
        const build = await client.buildDone<{ status: string; reason: string }>(buildIdFrom(pushed));
        expect(build).toMatchObject({
          status: "failure",
          reason: "build failed in me/hog: build ran out of memory (limit 256 MiB)",
        });
        const listed = await client.cli(["build", "list", "--tool", tool.name]);
        expect(listed.code, listed.stderr).toBe(0);
        expect(listed.stdout).toContain("build ran out of memory (limit 256 MiB)");
      } finally {
        await rm(repo.dir, { recursive: true, force: true });
      }
    },
    TIMEOUT_MS + 120_000,
  );
});
