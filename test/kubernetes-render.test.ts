import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseComponentsConfig } from "../services/domain/config/index.js";
import type { Release } from "../services/domain/releases/release.js";
import { run } from "../services/platform/process.js";
import express from "express";
import type { Server } from "node:http";
import { ToolService } from "../services/domain/tools/tool-service.js";
import { memoryLogger } from "../services/platform/logger.js";
import { renderRouter } from "../services/roles/http/api-render.js";
import { errorHandler } from "../services/roles/http/errors.js";
import { startHttpApp } from "./helpers/http-app.js";
import { startRedis } from "./helpers/redis.js";

// `GET /api/v1/tools/:tool/manifests` on a real app and Redis, and `slipway render` from dist/.

const repoRoot = path.resolve(import.meta.dirname, "..");
const DIGEST = `sha256:${"b".repeat(64)}`;
const COMMIT = "0123456789abcdef0123456789abcdef01234567";

let redis: Awaited<ReturnType<typeof startRedis>>;
let app: Awaited<ReturnType<typeof startHttpApp>>;
let demoToken: string;

function release(id: string, extra: Partial<Release> = {}): Release {
  return {
    id,
    tool: "demo",
    component: "web",
    build_id: `b-${id}`,
    commit: COMMIT,
    image: `127.0.0.1:5080/tool-demo/web:${COMMIT}`,
    image_digest: DIGEST,
    trigger: { kind: "git_push", ref: "refs/heads/main" },
    status: "superseded",
    created_at: new Date().toISOString(),
    ...extra,
  };
}

const CONFIG = [
  "config_version: v1beta1",
  "components:",
  "  web:",
  "    run:",
  "      command: web",
  "      port: 8000",
  "      publish: true",
  "  bot:",
  "    run:",
  "      command: python3 bot.py",
  "  nightly:",
  "    run:",
  "      command: python3 cleanup.py",
  "      schedule: '@daily'",
  "",
].join("\n");

async function get(route: string, token = app.adminToken) {
  const res = await fetch(`${app.url}${route}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, text: await res.text() };
}

type Manifests = {
  release_id: string;
  live: boolean;
  config_source: string;
  components: { name: string; kind: string }[];
  objects: {
    kind: string;
    metadata: { name: string; labels?: Record<string, string> };
    spec?: unknown;
    data?: Record<string, string>;
  }[];
};

beforeAll(async () => {
  redis = await startRedis();
  app = await startHttpApp(redis.url);
  demoToken = (await app.createTool("demo")).token;
  await app.createTool("empty");
  await app.createTool("old");
  // An older release with the config, the live one, and a newer one that failed.
  const config = parseComponentsConfig(CONFIG, "slipway.yaml");
  await app.store.createRelease(release("01hdemo0000000000000001", { config, processes: ["web"] }));
  await app.store.createRelease(
    release("01hdemo0000000000000002", { config, processes: ["web"], status: "live" }),
  );
  await app.store.createRelease(
    release("01hdemo0000000000000003", { status: "failed", commit: "f".repeat(40) }),
  );
  await app.store.setRoute({
    tool: "demo",
    release_id: "01hdemo0000000000000002",
    host: "127.0.0.1",
    port: 1,
  });
  // A release made before configs were recorded.
  await app.store.createRelease(release("01hold00000000000000001", { tool: "old", status: "live" }));
});

afterAll(async () => {
  await app?.close();
  await redis?.stop();
});

describe("GET /api/v1/tools/:tool/manifests", () => {
  it("renders the live release's components, not the newer failed one", async () => {
    const res = await get("/api/v1/tools/demo/manifests");
    expect(res.status, res.text).toBe(200);
    const view = JSON.parse(res.text) as Manifests;
    expect(view).toMatchObject({
      release_id: "01hdemo0000000000000002",
      live: true,
      config_source: "release",
    });
    expect(view.components).toEqual([
      { name: "web", kind: "continuous-webservice" },
      { name: "bot", kind: "continuous-worker" },
      { name: "nightly", kind: "scheduled" },
    ]);
    expect(view.objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "Namespace/tool-demo",
      "ResourceQuota/tool-quota",
      "LimitRange/tool-limits",
      "NetworkPolicy/tool-isolation",
      "Service/web",
      "Deployment/bot",
      "Deployment/web",
      "CronJob/nightly",
      "Ingress/web",
    ]);
    const web = view.objects.find((o) => o.kind === "Deployment" && o.metadata.name === "web");
    expect(JSON.stringify(web)).toContain(`127.0.0.1:5080/tool-demo/web@${DIGEST}`);
    expect(web?.metadata.labels?.["slipway.dev/release"]).toBe("01hdemo0000000000000002");
    const ingress = view.objects.find((o) => o.kind === "Ingress");
    // The http-app helper serves tools at <tool>.localhost.
    expect(JSON.stringify(ingress)).toContain('"host":"demo.localhost"');
  });

  it("narrows to one component and names the components when asked for one that does not exist", async () => {
    const one = JSON.parse((await get("/api/v1/tools/demo/manifests?component=bot")).text) as Manifests;
    expect(one.objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(["Deployment/bot"]);
    const missing = await get("/api/v1/tools/demo/manifests?component=nope");
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text)).toEqual({
      error: {
        code: "not_found",
        message:
          'release 01hdemo0000000000000002 of "demo" has no component "nope"; it has web, bot, nightly',
      },
    });
  });

  it("gives a release without a recorded config the default web component", async () => {
    const view = JSON.parse((await get("/api/v1/tools/old/manifests")).text) as Manifests;
    expect(view.config_source).toBe("default");
    expect(view.components).toEqual([{ name: "web", kind: "continuous-webservice" }]);
  });

  it("answers 404 for a tool with no release, and 403 for another tool's token", async () => {
    const none = await get("/api/v1/tools/empty/manifests");
    expect(none.status).toBe(404);
    expect(none.text).toContain("has no release yet");
    expect((await get("/api/v1/tools/empty/manifests", demoToken)).status).toBe(403);
    expect((await get("/api/v1/tools/demo/manifests", demoToken)).status).toBe(200);
  });

  it("is described in the OpenAPI document", async () => {
    const doc = JSON.parse((await get("/api/v1/openapi.json")).text) as { paths: Record<string, unknown> };
    expect(doc.paths["/api/v1/tools/{tool}/manifests"]).toBeDefined();
  });
});

describe("environment variables in the review", () => {
  it("shows each component's Secret with the variable names and *** for every value", async () => {
    const urls = { publicUrl: "http://127.0.0.1:8080", webUrl: (t: string) => `http://${t}.localhost:8080/` };
    const secrets = { DB_PASSWORD: "hunter2-very-secret", API_KEY: "k-123456" };
    const web = express();
    web.use((req, _res, next) => {
      req.principal = { kind: "admin" };
      next();
    });
    web.use(
      renderRouter({
        store: app.store,
        tools: new ToolService(app.store, urls),
        urls,
        envvars: {
          list: () => Promise.resolve(Object.entries(secrets).map(([name, value]) => ({ name, value }))),
        },
      }),
    );
    web.use(errorHandler(memoryLogger()));
    const server: Server = await new Promise((resolve) => {
      const s = web.listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      const text = await (await fetch(`http://127.0.0.1:${port}/api/v1/tools/demo/manifests`)).text();
      for (const value of Object.values(secrets)) {
        expect(text).not.toContain(value);
        expect(text).not.toContain(Buffer.from(value).toString("base64"));
      }
      const view = JSON.parse(text) as Manifests;
      const secretObjects = view.objects.filter((o) => o.kind === "Secret");
      expect(secretObjects.map((o) => o.metadata.name)).toEqual(["bot-env", "nightly-env", "web-env"]);
      for (const o of secretObjects) expect(o.data).toEqual({ API_KEY: "***", DB_PASSWORD: "***" });
      const deployment = JSON.stringify(view.objects.find((o) => o.kind === "Deployment"));
      expect(deployment).toContain('"slipway.dev/env-names":"API_KEY,DB_PASSWORD"');
      expect(deployment).not.toContain("env-checksum");
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe("slipway render (CLI from dist/)", () => {
  const main = path.join(repoRoot, "dist/services/main.js");
  const cli = (args: string[]) =>
    run(process.execPath, [main, ...args], {
      env: { ...process.env, SLIPWAY_URL: app.url, SLIPWAY_TOKEN: app.adminToken },
      allowFailure: true,
    });

  beforeAll(async () => {
    if (!existsSync(path.join(repoRoot, "dist/services/roles/cli/render-commands.js"))) {
      await run("npm", ["run", "build"], { cwd: repoRoot, allowFailure: true });
    }
  }, 300_000);

  it("prints the manifests as YAML with a header naming the release", async () => {
    const out = await cli(["render", "demo"]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^# demo: release 01hdemo0000000000000002 \(live\), commit 0123456789ab\n/);
    const docs = parseAllDocuments(out.stdout).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string } },
    );
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toContain("CronJob/nightly");
    expect(docs).toHaveLength(9);
  });

  it("prints only YAML with --yaml and the API's answer with --json, for one component", async () => {
    const yaml = await cli(["render", "demo", "--component", "web", "--yaml"]);
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(yaml.stdout.startsWith("---\n")).toBe(true);
    const kinds = parseAllDocuments(yaml.stdout).map((d) => (d.toJS() as { kind: string }).kind);
    expect(kinds).toEqual(["Service", "Deployment", "Ingress"]);
    const json = await cli(["render", "demo", "--json"]);
    expect((JSON.parse(json.stdout) as Manifests).release_id).toBe("01hdemo0000000000000002");
  });

  it("fails with the API's message for a tool without releases", async () => {
    const out = await cli(["render", "empty"]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('tool "empty" has no release yet');
  });
});
