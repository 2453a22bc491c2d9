import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maskValue } from "../services/domain/envvars/envvars.js";
import type { RunningServer } from "../services/roles/server/server.js";
import { git, gitRepo, pythonServer, waitFor } from "./helpers/apps.js";
import { buildIdFrom, clientOf, removeToolContainers, startLocalServer } from "./helpers/local-server.js";

/**
 * The web dashboard in Debian's headless Chromium, against a real local server: sign in with a tool
 * token, watch a push's build log stream to "live", roll back with the confirmation, read a failed job's
 * reason; a tool's session never sees another tool; the admin sees all tools, the queue and health.
 * An env var's value is shown masked on request only; CPU and memory samples (every 3 s here instead of
 * a minute) show on the tool page. Screenshots of the main pages land in docs/screenshots/ (the README
 * shows one).
 */
const repoRoot = path.resolve(import.meta.dirname, "..");
const SHOTS = path.join(repoRoot, "docs/screenshots");
const A = "dash-a";
const B = "dash-b";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let server: RunningServer;
let home: string;
let profileDirs: string[] = [];
const contexts: BrowserContext[] = [];
const client = clientOf(() => server);
const { api } = client;
let toolA: { token: string; git_url: string };
let toolB: { token: string; git_url: string; webhook_url: string };
let firstBuild: string;
/** Set before the first deploy, so setting it restarts nothing. */
const SECRET = { name: "DATABASE_URL", value: "postgres://dash:s3cret-pw@db.internal:5432/app" };

async function browser(viewport = { width: 1280, height: 900 }): Promise<Page> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "slipway-chromium-"));
  profileDirs.push(dir);
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
  });
  contexts.push(context);
  return context.pages()[0] ?? context.newPage();
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${server.url}/`);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/ui\/(tools|admin)/);
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  ({ server, home } = await startLocalServer({
    name: "dashboard",
    env: { SLIPWAY_HEALTH_TIMEOUT_S: "30" },
    config: { usageSampleMs: 3000 },
  }));
  toolA = await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name: A }) });
  await api(`/api/v1/tools/${A}/envvars/${SECRET.name}`, {
    method: "PUT",
    body: JSON.stringify({ value: SECRET.value }),
  });
  toolB = await api("/api/v1/tools", { method: "POST", body: JSON.stringify({ name: B }) });
}, 1_200_000);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await server?.close();
  await removeToolContainers(A);
  for (const dir of profileDirs) await rm(dir, { recursive: true, force: true });
  profileDirs = [];
  if (home) await rm(home, { recursive: true, force: true });
});

describe("the web dashboard", () => {
  let page: Page;

  it("refuses a wrong token, signs in with a tool token into an HttpOnly SameSite=Strict session, and guides an empty tool's first push", async () => {
    page = await browser();
    await page.goto(`${server.url}/ui/tools/${A}`);
    expect(page.url()).toBe(`${server.url}/ui/`);
    await page.getByLabel("Token").fill("slt_not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain("Unknown or revoked token");
    await shot(page, "sign-in");

    await signIn(page, toolA.token);
    expect(page.url()).toBe(`${server.url}/ui/tools/${A}`);
    const cookie = (await page.context().cookies()).find((c) => c.name === "slipway_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    expect(cookie?.value).not.toContain(toolA.token);
    const guide = await page.getByRole("region", { name: "First deploy" }).textContent();
    expect(guide).toContain(`git remote add slipway ${toolA.git_url}`);
    expect(guide).toContain("git push slipway main");
    await shot(page, "first-run");
  }, 120_000);

  it("follows a push's build log in the page until it says live", async () => {
    const repo = await gitRepo({
      "app.py": pythonServer(`200, b"dashboard v1"`, `print("dashboard app starting", flush=True)`),
    });
    const out = await git(repo.dir, [
      "push",
      toolA.git_url.replace("http://", `http://user:${toolA.token}@`),
      "main",
    ]);
    firstBuild = buildIdFrom(out);
    await page.goto(`${server.url}/ui/tools/${A}`);
    await page.getByRole("link", { name: firstBuild }).click();
    await page
      .locator("#build-status", { hasText: /^live$/ })
      .waitFor({ state: "attached", timeout: 600_000 });
    // The stream's last line, after the deploy's: the build's own outcome.
    await page.locator("#build-log", { hasText: "--- build success" }).waitFor({ timeout: 60_000 });
    const log = (await page.locator("#build-log").textContent()) ?? "";
    expect(log).toMatch(/===> LIVE: release \w+ serves dash-a/);
    await shot(page, "build-log");
  }, 660_000);

  it("rolls back to an earlier release after a confirmation", async () => {
    const first = (await api<{ release_id: string }>(`/api/v1/builds/${firstBuild}`)).release_id;
    // An env var change makes a second release (a restart) without another build.
    await api(`/api/v1/tools/${A}/envvars/GREETING`, {
      method: "PUT",
      body: JSON.stringify({ value: "hi" }),
    });
    await waitFor(
      "the restart release to go live",
      async () => {
        const list = await api<{ id: string; live: boolean }[]>(`/api/v1/tools/${A}/releases`);
        return list.find((r) => r.live && r.id !== first);
      },
      300_000,
      1000,
    );
    await page.goto(`${server.url}/ui/tools/${A}`);
    await page.getByRole("link", { name: `Roll back to ${first}` }).click();
    expect(await page.locator("h1").textContent()).toBe(`Roll back ${A}?`);
    await page.getByRole("button", { name: `Yes, roll back to ${first}` }).click();
    const flash = (await page.getByRole("status").first().textContent()) ?? "";
    const made = /queued as release (\w+)/.exec(flash)?.[1];
    expect(made).toBeDefined();
    const rollback = await waitFor(
      "the rollback to go live",
      async () => {
        const list = await api<{ id: string; live: boolean; rollback_of: string | null }[]>(
          `/api/v1/tools/${A}/releases`,
        );
        return list.find((r) => r.id === made && r.live);
      },
      300_000,
      1000,
    );
    expect(rollback.rollback_of).toBe(first);
    await page.reload();
    expect(await page.locator("#live-release").textContent()).toBe(made);
    expect(await page.getByRole("region", { name: "Environment variables" }).textContent()).toContain(
      "GREETING",
    );
    expect(await page.content()).not.toContain('"hi"');
    const web = (await page.getByRole("region", { name: "Webservice" }).textContent()) ?? "";
    expect(web).toContain("running");
    expect(await page.locator("#replicas-up").textContent()).toBe("1 of 1");
    // CPU and memory of its container now, from podman stats.
    const usage = page.getByRole("region", { name: "Webservice" }).locator("table");
    expect(await usage.textContent()).toMatch(/web\s*0\s*[\d.]+%\s*[\d.]+\s*[kMG]?i?B \/ /);
    // The process's output reaches the page in batches, off the request path.
    await waitFor(
      "the webservice's output on the page",
      async () => {
        await page.reload();
        const text = await page.getByRole("region", { name: "Webservice" }).textContent();
        return text?.includes("dashboard app starting") ? true : undefined;
      },
      30_000,
      1000,
    );
  }, 660_000);

  it("shows an env var's value masked, only on request, and never to another tool's session", async () => {
    const res = await page.goto(`${server.url}/ui/tools/${A}`);
    expect(res?.headers()["cache-control"]).toBe("no-store");
    const env = page.getByRole("region", { name: "Environment variables" });
    expect(await env.textContent()).toContain(SECRET.name);
    expect(await page.content()).not.toContain("s3cret");
    // The button is a form's: reached and pressed with the keyboard.
    await page.getByRole("button", { name: `Show value of ${SECRET.name}` }).focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(`${server.url}/ui/tools/${A}/envvars/${SECRET.name}`);
    expect(await page.locator("h1").textContent()).toBe(`Environment variable ${SECRET.name}`);
    const masked = maskValue(SECRET.value).masked;
    expect(masked).toMatch(/^po•+pp$/);
    expect(await page.locator("#env-value").textContent()).toBe(masked);
    expect(await page.content()).not.toContain("s3cret");
    await shot(page, "env-value");
    // A value of 8 characters or fewer: bullets only.
    await page.goto(`${server.url}/ui/tools/${A}`);
    await page.getByRole("button", { name: "Show value of GREETING" }).click();
    expect(await page.locator("#env-value").textContent()).toBe("••");
    expect(await page.content()).not.toContain('"hi"');

    const csrf = await page.locator('input[name="csrf"]').first().inputValue();
    const ask = (p: Page, form: Record<string, string>) =>
      p.context().request.post(`${server.url}/ui/tools/${A}/envvars/${SECRET.name}`, {
        form,
        headers: { Origin: server.url },
        maxRedirects: 0,
      });
    const own = await ask(page, { csrf });
    expect(own.status()).toBe(200);
    expect(own.headers()["cache-control"]).toBe("no-store");
    expect(await own.text()).toContain(masked);
    expect((await ask(page, { csrf: "forged" })).status()).toBe(403);
    // B's session, with its own valid CSRF token: refused, and nothing of the value in the answer.
    const other = await browser();
    try {
      await signIn(other, toolB.token);
      const bCsrf = await other.locator('input[name="csrf"]').first().inputValue();
      const refused = await ask(other, { csrf: bCsrf });
      expect([403, 404]).toContain(refused.status());
      const body = await refused.text();
      expect(body).not.toContain("s3cret");
      expect(body).not.toContain(masked);
    } finally {
      await other.context().close();
    }
  }, 120_000);

  it("shows the webservice's CPU and memory over the last samples", async () => {
    const region = page.getByRole("region", { name: "Resource use, last hour" });
    await waitFor(
      "a usage sample of the webservice on the page",
      async () => {
        await page.goto(`${server.url}/ui/tools/${A}`);
        return /Webservice\s*[\d.]+%/.test((await region.textContent()) ?? "") ? true : undefined;
      },
      60_000,
      1000,
    );
    const cpu = region.getByRole("img", { name: /^CPU of webservice: \d+ samples?, lowest [\d.]+%/ });
    const memory = region.getByRole("img", {
      name: /^Memory of webservice: \d+ samples?, lowest [\d.]+ [KMG]iB/,
    });
    expect(await cpu.count()).toBe(1);
    expect(await memory.count()).toBe(1);
    expect(await region.textContent()).toMatch(/Webservice\s*[\d.]+%\s*[\d.]+ [KMG]iB/);
  }, 120_000);

  it("shows a failed job's exit code and reason with its log", async () => {
    const ran = await api<{ run_id: string }>(`/api/v1/tools/${A}/jobs`, {
      method: "POST",
      body: JSON.stringify({
        name: "fails",
        command: `python3 -c "import sys; print('migration failed: table is locked'); sys.exit(3)"`,
      }),
    });
    await waitFor(
      "the job's run to end",
      async () => {
        const r = await api<{ final: boolean }>(`/api/v1/tools/${A}/jobs/fails/runs/${ran.run_id}?wait=20`);
        return r.final ? r : undefined;
      },
      300_000,
    );
    await page.goto(`${server.url}/ui/tools/${A}`);
    expect(await page.getByRole("region", { name: "Jobs" }).textContent()).toMatch(/fails.*one-off.*failed/s);
    await shot(page, "tool-page");
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, "tool-page-phone");
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.getByRole("link", { name: "fails", exact: true }).click();
    const run = page.getByRole("region", { name: /^run / }).first();
    expect(await run.locator(".reason").textContent()).toBe("exited with code 3");
    expect(await run.textContent()).toContain("migration failed: table is locked");
    await shot(page, "job-failed");
  }, 360_000);

  it("never shows one tool's pages or data to another tool's session, and a rotated token ends its sessions", async () => {
    const bPages = [
      `/ui/tools/${B}`,
      `/ui/tools/${B}/builds/${firstBuild}`,
      `/ui/tools/${B}/jobs/fails`,
      `/ui/admin`,
    ];
    for (const p of bPages) {
      const res = await page.goto(`${server.url}${p}`);
      expect([403, 404], p).toContain(res?.status());
      const text = await page.content();
      expect(text).not.toContain(toolB.git_url);
      expect(text).not.toContain(toolB.webhook_url);
    }
    // B's session cannot read A's build (by A's path) nor its log stream, nor roll A back.
    const other = await browser();
    await signIn(other, toolB.token);
    expect(other.url()).toBe(`${server.url}/ui/tools/${B}`);
    expect(await other.content()).not.toContain(firstBuild);
    for (const p of [
      `/ui/tools/${A}`,
      `/ui/tools/${A}/builds/${firstBuild}`,
      `/ui/tools/${A}/builds/${firstBuild}/log`,
    ]) {
      const res = await other.goto(`${server.url}${p}`);
      expect(res?.status(), p).toBe(403);
      expect(await other.content()).not.toContain("dashboard v1");
    }
    const releases = await api<{ id: string; live: boolean }[]>(`/api/v1/tools/${A}/releases`);
    const target = releases.find((r) => !r.live)!;
    const post = (p: Page, form: Record<string, string>, origin = server.url) =>
      p.context().request.post(`${server.url}/ui/tools/${A}/rollback/${target.id}`, {
        form,
        headers: { Origin: origin },
        maxRedirects: 0,
      });
    expect((await post(other, { csrf: "x" })).status()).toBe(403);
    // A's own session: a form without its CSRF token, or from another origin, is refused too.
    expect((await post(page, { csrf: "forged" })).status()).toBe(403);
    const csrf = await (async () => {
      await page.goto(`${server.url}/ui/tools/${A}/rollback/${target.id}`);
      return page.locator('input[name="csrf"]').first().inputValue();
    })();
    expect((await post(page, { csrf }, "http://evil.example")).status()).toBe(403);
    const after = await api<{ id: string }[]>(`/api/v1/tools/${A}/releases`);
    expect(after.length).toBe(releases.length);
    // Rotating B's token ends the sessions signed in with it.
    await api(`/api/v1/tools/${B}/rotate`, { method: "POST", body: JSON.stringify({ secret: "token" }) });
    await other.goto(`${server.url}/ui/tools/${B}`);
    expect(other.url()).toBe(`${server.url}/ui/`);
  }, 120_000);

  it("shows the admin every tool, the build queue and the health of Redis, registry, runtime and builders", async () => {
    const admin = await browser();
    await signIn(admin, server.adminToken);
    expect(admin.url()).toBe(`${server.url}/ui/admin`);
    const tools = (await admin.getByRole("region", { name: /^Tools/ }).textContent()) ?? "";
    expect(tools).toContain(A);
    expect(tools).toContain(B);
    const health = (await admin.getByRole("region", { name: "Health" }).textContent()) ?? "";
    for (const part of ["Redis", "Registry", "Runtime", "Builders"]) expect(health).toContain(part);
    expect(await admin.locator(".health .status-down").count()).toBe(0);
    expect(await admin.getByRole("region", { name: "Build queue" }).textContent()).toContain("0 waiting");
    await shot(admin, "admin");
    // The admin reaches any tool's page; signing out ends the session.
    await admin.getByRole("link", { name: B, exact: true }).click();
    expect(await admin.locator("h1").textContent()).toBe(`Tool ${B}`);
    await admin.getByRole("button", { name: "Sign out" }).click();
    await admin.goto(`${server.url}/ui/admin`);
    expect(admin.url()).toBe(`${server.url}/ui/`);
  }, 120_000);
});
