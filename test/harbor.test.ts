import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Server } from "node:http";
import express from "express";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { HarborClient } from "../services/adapters/harbor/client.js";
import { HarborToolRegistry } from "../services/adapters/harbor/tool-registry.js";
import { RegistryClient } from "../services/adapters/registry/client.js";
import { SharedRegistryAccess } from "../services/adapters/registry/shared-access.js";
import { RedisPullCredentials } from "../services/adapters/store/redis-pull-credentials.js";
import { CryptoBox } from "../services/platform/crypto-box.js";
import { loadConfig } from "../services/platform/env.js";
import { registryFeature } from "../services/roles/server/registry-wiring.js";
import { toolDeletion } from "../services/roles/server/tool-deletion-wiring.js";
import { registryRouter } from "../services/roles/http/api-registry.js";
import { errorHandler } from "../services/roles/http/errors.js";
import type { Principal } from "../services/roles/http/auth.js";
import type { ToolRegistryAccess } from "../services/ports/registry-access.js";
import { SlipwayError, TransientError } from "../services/platform/errors.js";
import { memoryLogger } from "../services/platform/logger.js";
import type { PullCredentials } from "../services/ports/registry-access.js";
import { startHarborDouble, type HarborDouble } from "./helpers/harbor-double.js";
import { startRedis } from "./helpers/redis.js";

// The Harbor adapter against a double that enforces Harbor's documented request shapes and auth
// (test/helpers/harbor-double.ts), with real Redis holding the sealed robot secrets. Never run against
// a live Harbor: README "What is tested against what".

let redis: { url: string; stop: () => Promise<void> };
let conn: Redis;
let harbor: HarborDouble;
const box = CryptoBox.fromKey(randomBytes(32));
let prefix = 0;

beforeAll(async () => {
  redis = await startRedis();
  conn = new Redis(redis.url);
  harbor = await startHarborDouble();
});

afterAll(async () => {
  conn?.disconnect();
  await harbor?.close();
  await redis?.stop();
});

let tool: (name: string) => string;
beforeEach(() => {
  prefix++;
  tool = (name) => `${name}${prefix}`;
});

function access(password = harbor.admin.password, keepImages = 10): HarborToolRegistry {
  return new HarborToolRegistry({
    client: HarborClient.create({ url: harbor.url, username: harbor.admin.username, password }),
    store: new RedisPullCredentials(conn, box),
    registryHost: harbor.host,
    keepImages,
    logger: memoryLogger(),
  });
}

/** A server's configuration with SLIPWAY_REGISTRY_KIND=harbor pointing at the double. */
const harborConfig = (home: string) =>
  loadConfig(
    {
      SLIPWAY_HOME: home,
      SLIPWAY_REGISTRY_URL: harbor.url,
      SLIPWAY_REGISTRY_KIND: "harbor",
      SLIPWAY_REGISTRY_USERNAME: harbor.admin.username,
      SLIPWAY_REGISTRY_PASSWORD: harbor.admin.password,
    },
    "/repo",
  );

/** Pulls a manifest the way a cluster would: the distribution API with Harbor's token flow. */
function pull(creds: PullCredentials, repository: string, digest: string) {
  return RegistryClient.create({
    url: harbor.url,
    username: creds.username,
    password: creds.password,
  }).getManifest(repository, digest);
}

const posts = (path: string) => harbor.requests.filter((r) => r.method === "POST" && r.path === path).length;

describe("Harbor projects", () => {
  it("creates the tool's project private, once, even when builders race for it", async () => {
    const project = `tool-${tool("alpha")}`;
    const before = posts("/projects");
    await Promise.all([access().preparePush(`${project}/web`), access().preparePush(`${project}/worker`)]);
    await access().preparePush(`${project}/web`);
    expect(harbor.project(project)).toMatchObject({ name: project, public: false });
    // Each fresh adapter checks first and creates only when missing; the loser of the race gets 409.
    expect(posts("/projects") - before).toBeLessThanOrEqual(2);
    const created = harbor.requests.filter((r) => r.method === "POST" && r.path === "/projects").at(-1);
    expect(created?.body).toEqual({ project_name: project, metadata: { public: "false" } });
  });

  it("reads a tool's project once per push (another process may have deleted it), the base project once", async () => {
    const a = access();
    const project = `tool-${tool("beta")}`;
    await a.preparePush(`${project}/web`);
    await a.preparePush("slipway/run");
    const reads = harbor.requests.length;
    await a.preparePush(`${project}/web`);
    await a.preparePush("slipway/run");
    expect(harbor.requests.slice(reads).map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /projects/${project}`,
    ]);
  });
});

describe("Harbor tag retention", () => {
  it("gives a tool's new project a daily retention keeping the newest N pushed artifacts per repository", async () => {
    const project = `tool-${tool("ret")}`;
    await access(undefined, 7).preparePush(`${project}/web`);
    // The double accepted it against RetentionPolicy's shape; this is what Harbor then runs.
    const policy = harbor.retention(project);
    expect(policy?.rules).toHaveLength(1);
    expect(policy?.rules[0]).toMatchObject({
      action: "retain",
      template: "latestPushedK",
      params: { latestPushedK: 7 },
      tag_selectors: [{ decoration: "matches", pattern: "**" }],
    });
    expect(policy?.rules[0]?.scope_selectors.repository).toMatchObject([{ pattern: "**" }]);
    expect(policy?.trigger.settings.cron).toBe("0 0 0 * * *");
    expect(policy?.scope).toEqual({ level: "project", ref: harbor.project(project)!.project_id });
  });

  it("leaves the shared base-layer project without one", async () => {
    await access().preparePush("slipway/run");
    expect(harbor.project("slipway")).toBeDefined();
    expect(harbor.retention("slipway")).toBeUndefined();
  });

  it("sets it on the first push after an upgrade for a project made without one, and only once", async () => {
    const project = `tool-${tool("old")}`;
    // What earlier Slipway versions did: the project alone.
    await HarborClient.create({ url: harbor.url, ...harbor.admin }).ensureProject(project);
    expect(harbor.retention(project)).toBeUndefined();
    const before = posts("/retentions");
    // Two processes racing for the first push: Harbor takes one policy, the other is told it exists.
    await Promise.all([access().preparePush(`${project}/web`), access().preparePush(`${project}/web`)]);
    expect(harbor.retention(project)?.rules[0]?.params).toEqual({ latestPushedK: 10 });
    await access().preparePush(`${project}/web`);
    expect(posts("/retentions") - before).toBeLessThanOrEqual(2);
  });
});

describe("tools delete with Harbor", () => {
  async function harborServer(home: string) {
    const config = harborConfig(home);
    const images = await registryFeature(config, { redis: conn, logger: memoryLogger() });
    const deletion = toolDeletion(config, {
      redis: conn,
      store: {
        getTool: (name: string) => Promise.resolve({ name }),
        listBuilds: () => Promise.resolve([]),
      } as never,
      builds: { cancel: () => Promise.resolve() },
      reposDir: path.join(home, "repos"),
      backend: { toolTraces: () => [] },
      profile: { toolTraces: () => [] },
      registry: images.traces,
      logger: memoryLogger(),
    });
    return { images, deletion };
  }

  it("deletes the tool's project with its repositories, robot and retention; again is fine", async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), "slipway-harbor-home-"));
    try {
      const name = tool("gone");
      const project = `tool-${name}`;
      const { images, deletion } = await harborServer(home);
      await images.access.preparePush(`${project}/web`);
      const creds = await images.access.pullCredentials(name);
      const digest = harbor.seedManifest(`${project}/web`, `{"schemaVersion":2,"g":1}`);
      // A repository name with a `/` past the project: Harbor wants it double-encoded.
      harbor.seedManifest(`${project}/web/cache`, `{"schemaVersion":2,"g":2}`);
      const other = `tool-${tool("stays")}`;
      harbor.seedManifest(`${other}/web`, `{"schemaVersion":2,"s":1}`);
      await images.access.preparePush(`${other}/web`);

      const answer = await deletion.delete(name, { force: false });
      expect(answer.removed).toContain("Harbor project");
      expect(harbor.project(project)).toBeUndefined();
      expect(harbor.repositories(project)).toEqual([]);
      expect(harbor.robots().filter((r) => r.name === creds.username)).toEqual([]);
      expect(await conn.get(`slipway:registry-pull:${name}`)).toBeNull();
      await expect(pull(creds, `${project}/web`, digest)).rejects.toMatchObject({ code: "unauthorized" });
      // Another tool's project is untouched.
      expect(harbor.repositories(other)).toEqual([`${other}/web`]);
      expect(harbor.retention(other)).toBeDefined();

      // Run again (the tool record was faked back): Harbor's 404 is success.
      expect((await deletion.delete(name, { force: false })).removed).toContain("Harbor project");

      // A tool made again under the same name gets a new project with its retention.
      await images.access.preparePush(`${project}/web`);
      expect(harbor.project(project)).toBeDefined();
      expect(harbor.retention(project)).toBeDefined();
      await images.close();
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it("a builder in another process pushes again after the tool is deleted and made again", async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), "slipway-harbor-home-"));
    try {
      const name = tool("again");
      const project = `tool-${name}`;
      const builder = access();
      await builder.preparePush(`${project}/web`);
      const { images, deletion } = await harborServer(home);
      await deletion.delete(name, { force: false });
      expect(harbor.project(project)).toBeUndefined();
      await builder.preparePush(`${project}/web`);
      expect(harbor.project(project)).toBeDefined();
      expect(harbor.retention(project)).toBeDefined();
      await images.close();
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it("says to run it again when Harbor fails part-way, and the next run finishes", async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), "slipway-harbor-home-"));
    try {
      const name = tool("flaky");
      const project = `tool-${name}`;
      const { images, deletion } = await harborServer(home);
      await images.access.preparePush(`${project}/web`);
      harbor.seedManifest(`${project}/web`, `{"schemaVersion":2,"f":1}`);
      harbor.failNext(503);
      await expect(deletion.delete(name, { force: false })).rejects.toThrow(
        new RegExp(
          `could not remove the Harbor project of "${name}".*run \`slipway tools delete ${name}\` again`,
        ),
      );
      expect(harbor.project(project)).toBeDefined();
      await deletion.delete(name, { force: false });
      expect(harbor.project(project)).toBeUndefined();
      await images.close();
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it("the double refuses to delete a project that still has repositories, as Harbor does", async () => {
    const project = `tool-${tool("full")}`;
    await access().preparePush(`${project}/web`);
    harbor.seedManifest(`${project}/web`, `{"schemaVersion":2,"x":1}`);
    const res = await fetch(`${harbor.url}/api/v2.0/projects/${project}`, {
      method: "DELETE",
      headers: {
        "x-is-resource-name": "true",
        authorization: `Basic ${Buffer.from(`${harbor.admin.username}:${harbor.admin.password}`).toString("base64")}`,
      },
    });
    expect(res.status).toBe(412);
    expect(harbor.project(project)).toBeDefined();
  });
});

describe("per-tool pull robots", () => {
  it("issues a never-expiring robot that may only pull from its tool's project, and stores its secret sealed", async () => {
    const name = tool("gamma");
    const creds = await access().pullCredentials(name);
    expect(creds).toMatchObject({ registry: harbor.host, username: `robot$tool-${name}+slipway-pull` });
    const robot = harbor.robots().find((r) => r.name === creds.username)!;
    expect(robot).toMatchObject({ level: "project", duration: -1, disable: false });
    expect(robot.permissions).toEqual([
      { kind: "project", namespace: `tool-${name}`, access: [{ resource: "repository", action: "pull" }] },
    ]);

    const raw = (await conn.get(`slipway:registry-pull:${name}`))!;
    expect(raw).not.toContain(creds.password);
    // A sealed secret copied into another tool's record does not open there.
    await conn.set(
      `slipway:registry-pull:${tool("other")}`,
      raw.replace(`"tool":"${name}"`, `"tool":"${tool("other")}"`),
    );
    await expect(new RedisPullCredentials(conn, box).get(tool("other"))).rejects.toThrow(
      /failed authentication/,
    );

    const robotsBefore = harbor.robots().length;
    expect(await access().pullCredentials(name)).toEqual(creds);
    expect(harbor.robots().length).toBe(robotsBefore);
  });

  it("lets tool A's robot pull tool A's images and not tool B's", async () => {
    const [a, b] = [tool("apps"), tool("bots")];
    const digestA = harbor.seedManifest(`tool-${a}/web`, `{"schemaVersion":2,"a":"${a}"}`);
    const digestB = harbor.seedManifest(`tool-${b}/web`, `{"schemaVersion":2,"b":"${b}"}`);
    const credsA = await access().pullCredentials(a);
    const credsB = await access().pullCredentials(b);

    expect((await pull(credsA, `tool-${a}/web`, digestA))?.digest).toBe(digestA);
    expect((await pull(credsB, `tool-${b}/web`, digestB))?.digest).toBe(digestB);
    await expect(pull(credsA, `tool-${b}/web`, digestB)).rejects.toMatchObject({ code: "unauthorized" });
    await expect(pull(credsB, `tool-${a}/web`, digestA)).rejects.toMatchObject({ code: "unauthorized" });
  });

  it("rotates a robot's secret on demand: the old one stops pulling, the new one works", async () => {
    const name = tool("delta");
    const digest = harbor.seedManifest(`tool-${name}/web`, `{"schemaVersion":2,"d":1}`);
    const registry = access();
    const old = await registry.pullCredentials(name);
    const rotated = await registry.rotatePullCredentials(name);
    expect(rotated.username).toBe(old.username);
    expect(rotated.password).not.toBe(old.password);
    await expect(pull(old, `tool-${name}/web`, digest)).rejects.toMatchObject({ code: "unauthorized" });
    expect((await pull(rotated, `tool-${name}/web`, digest))?.digest).toBe(digest);
    expect(await access().pullCredentials(name)).toEqual(rotated);
  });

  it("refreshes the existing robot when its stored secret is lost, rather than making a second one", async () => {
    const name = tool("epsilon");
    const first = await access().pullCredentials(name);
    await conn.del(`slipway:registry-pull:${name}`);
    const robotsBefore = harbor.robots().length;
    const again = await access().pullCredentials(name);
    expect(harbor.robots().length).toBe(robotsBefore);
    expect(again.username).toBe(first.username);
    expect(again.password).not.toBe(first.password);
  });
});

describe("Harbor's errors", () => {
  it("says which settings to check when Harbor rejects Slipway's account, without the password", async () => {
    const wrong = "definitely-not-it";
    const error = await access(wrong)
      .preparePush(`tool-${tool("zeta")}/web`)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SlipwayError);
    expect(error).toMatchObject({ code: "unauthorized" });
    expect((error as Error).message).toMatch(
      /HTTP 401.*SLIPWAY_REGISTRY_USERNAME and SLIPWAY_REGISTRY_PASSWORD/,
    );
    expect((error as Error).message).not.toContain(wrong);
  });

  it("treats 5xx as transient, and does not remember the failure", async () => {
    const registry = access();
    const project = `tool-${tool("eta")}`;
    harbor.failNext(503);
    await expect(registry.preparePush(`${project}/web`)).rejects.toBeInstanceOf(TransientError);
    await registry.preparePush(`${project}/web`);
    expect(harbor.project(project)).toBeDefined();
  });

  it("maps Harbor's 404 to not_found, keeping Harbor's message", async () => {
    const client = HarborClient.create({ url: harbor.url, ...harbor.admin });
    await expect(
      client.createPullRobot("tool-nonexistent-project", "slipway-pull", "x"),
    ).rejects.toMatchObject({
      code: "not_found",
      message: expect.stringMatching(/project tool-nonexistent-project not found/) as unknown,
    });
  });
});

describe("server wiring", () => {
  it("uses Harbor for SLIPWAY_REGISTRY_KIND=harbor: pushes go to its host, each tool gets its own robot", async () => {
    const home = await mkdtemp(path.join(os.tmpdir(), "slipway-harbor-home-"));
    try {
      const config = harborConfig(home);
      const images = await registryFeature(config, { redis: conn, logger: memoryLogger() });
      expect(images.endpoint).toMatchObject({ url: harbor.url, host: harbor.host, username: "admin" });
      await images.access.preparePush(`tool-${tool("wired")}/web`);
      expect(harbor.project(`tool-${tool("wired")}`)).toBeDefined();
      const [a, b] = await Promise.all([
        images.access.pullCredentials(tool("wired")),
        images.access.pullCredentials(tool("other")),
      ]);
      expect(a.username).toBe(`robot$tool-${tool("wired")}+slipway-pull`);
      expect(b.username).toBe(`robot$tool-${tool("other")}+slipway-pull`);
      expect(a.password).not.toBe(b.password);
      await images.close();
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe("POST /api/v1/tools/:tool/registry/rotate-pull-credentials", () => {
  async function serve(registry: Pick<ToolRegistryAccess, "rotatePullCredentials">, principal: Principal) {
    const restarts: string[] = [];
    const app = express();
    app.use((req, _res, next) => {
      req.principal = principal;
      next();
    });
    app.use(
      registryRouter({
        tools: { get: (name: string) => Promise.resolve({ name }) } as never,
        access: registry,
        restart: (tool) => {
          restarts.push(tool);
          return Promise.resolve("rel-restart");
        },
      }),
    );
    app.use(errorHandler(memoryLogger()));
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    const address = server.address() as { port: number };
    const post = (t: string) =>
      fetch(`http://127.0.0.1:${address.port}/api/v1/tools/${t}/registry/rotate-pull-credentials`, {
        method: "POST",
      });
    return { post, restarts, close: () => new Promise<void>((r) => server.close(() => r())) };
  }

  it("rotates the robot, restarts the tool so the new Secret is applied, and never returns the secret", async () => {
    const name = tool("rot");
    const registry = access();
    const digest = harbor.seedManifest(`tool-${name}/web`, `{"schemaVersion":2,"r":1}`);
    const old = await registry.pullCredentials(name);
    const api = await serve(registry, { kind: "tool", tool: name });
    try {
      const res = await api.post(name);
      const text = await res.text();
      expect(res.status, text).toBe(202);
      const rotated = await registry.pullCredentials(name);
      expect(JSON.parse(text)).toEqual({
        tool: name,
        registry: harbor.host,
        username: old.username,
        release_id: "rel-restart",
      });
      expect(text).not.toContain(rotated.password);
      expect(api.restarts).toEqual([name]);
      await expect(pull(old, `tool-${name}/web`, digest)).rejects.toMatchObject({ code: "unauthorized" });
      expect((await pull(rotated, `tool-${name}/web`, digest))?.digest).toBe(digest);
      // Another tool's token may not rotate this tool's credential.
      expect((await api.post(tool("someone-else"))).status).toBe(403);
    } finally {
      await api.close();
    }
  });

  it("explains that a plain registry's shared credential is rotated at the registry", async () => {
    const shared = new SharedRegistryAccess({ registry: "127.0.0.1:5000", username: "u", password: "p" });
    const api = await serve(shared, { kind: "admin" });
    try {
      const res = await api.post(tool("plain"));
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(res.status).toBe(400);
      expect(body.error.message).toMatch(/shared by all tools/);
      expect(api.restarts).toEqual([]);
    } finally {
      await api.close();
    }
  });
});
