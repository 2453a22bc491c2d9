import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpApp } from "./helpers/http-app.js";
import { startRedis } from "./helpers/redis.js";

/** Webhook rate limits on the real HTTP app and real Redis token buckets. */
const pushHook = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "fixtures", "gitlab", "gitlab-push-hook.docs.json"), "utf8"),
) as Record<string, unknown>;

let redis: Awaited<ReturnType<typeof startRedis>>;
const apps: Awaited<ReturnType<typeof startHttpApp>>[] = [];
let shaCounter = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const a of apps) await a.close();
  await redis?.stop();
});

const COMMIT = "c".repeat(40);

async function appWith(perTool: number, perAddress: number) {
  const app = await startHttpApp(
    redis.url,
    { resolve: () => Promise.resolve({ ref: "refs/heads/main", commit: COMMIT }) },
    { webhookRate: { perTool, perAddress } },
  );
  apps.push(app);
  return app;
}

type App = Awaited<ReturnType<typeof appWith>>;

function push(app: App, tool: string, secret: string, headers: Record<string, string> = {}) {
  const sha = (++shaCounter).toString(16).padStart(40, "a");
  return fetch(`${app.url}/hooks/gitlab/${tool}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": secret,
      ...headers,
    },
    body: JSON.stringify({ ...pushHook, after: sha, checkout_sha: sha }),
  });
}

async function expectLimited(res: Response) {
  expect(res.status).toBe(429);
  const retryAfter = Number(res.headers.get("retry-after"));
  expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe("rate_limited");
  expect(body.error.message).toMatch(/retry in \d+ s/);
  return retryAfter;
}

async function waitingBuilds(app: App) {
  await app.queued();
  return (await app.queue.counts("build")).waiting;
}

describe("webhook rate limits", () => {
  it("answers 429 with Retry-After once a tool spent its budget, queues nothing more, and leaves other tools alone", async () => {
    const app = await appWith(3, 1000);
    const a = await app.createTool("limited-a");
    const b = await app.createTool("limited-b");
    for (let i = 0; i < 3; i++) expect((await push(app, a.name, a.webhook_secret)).status).toBe(202);
    const before = await waitingBuilds(app);
    // 3 per minute refill one token every 20 s: that is the longest a caller is told to wait.
    const retryAfter = await expectLimited(await push(app, a.name, a.webhook_secret));
    expect(retryAfter).toBeLessThanOrEqual(20);
    expect(await waitingBuilds(app)).toBe(before);
    expect(await app.store.listBuilds(a.name, 100)).toHaveLength(3);
    // Another tool has its own budget.
    expect((await push(app, b.name, b.webhook_secret)).status).toBe(202);
  });

  it("does not let requests with a wrong secret spend a tool's budget", async () => {
    const app = await appWith(3, 1000);
    const tool = await app.createTool("guarded");
    for (let i = 0; i < 10; i++) expect((await push(app, tool.name, "wrong-secret")).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await push(app, tool.name, tool.webhook_secret)).status).toBe(202);
  });

  it("limits one client address before checking its credentials, and not other addresses", async () => {
    const app = await appWith(1000, 5);
    const tool = await app.createTool("by-address");
    // The app trusts a loopback reverse proxy, so X-Forwarded-For names the client.
    const flood = { "x-forwarded-for": "203.0.113.7" };
    for (let i = 0; i < 5; i++) expect((await push(app, tool.name, "wrong-secret", flood)).status).toBe(401);
    // Even with the right secret this address is now over its limit.
    await expectLimited(await push(app, tool.name, tool.webhook_secret, flood));
    const other = await push(app, tool.name, tool.webhook_secret, { "x-forwarded-for": "198.51.100.9" });
    expect(other.status).toBe(202);
  });

  // Served before Express, a delivery's address and tool tokens are taken by the intake script itself.
  it("counts every delivery against its address on the plain route, refusing the next one with nothing queued", async () => {
    const app = await appWith(1000, 5);
    const tool = await app.createTool("front-address");
    for (let i = 0; i < 3; i++) expect((await push(app, tool.name, "wrong-secret")).status).toBe(401);
    for (let i = 0; i < 2; i++) expect((await push(app, tool.name, tool.webhook_secret)).status).toBe(202);
    const before = await waitingBuilds(app);
    await expectLimited(await push(app, tool.name, tool.webhook_secret));
    await expectLimited(await push(app, tool.name, "wrong-secret"));
    expect(await app.store.listBuilds(tool.name, 100)).toHaveLength(2);
    expect(await waitingBuilds(app)).toBe(before);
  });

  it("queues a delivery once when it arrives 20 times at once, each spending the tool's budget", async () => {
    const app = await appWith(25, 1000);
    const tool = await app.createTool("limited-redelivered");
    const key = { "idempotency-key": "one-delivery" };
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => push(app, tool.name, tool.webhook_secret, key)),
    );
    expect(answers.filter((a) => a.status === 202)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(19);
    expect(await app.store.listBuilds(tool.name, 100)).toHaveLength(1);
    // 20 of 25 tokens spent: 5 more deliveries, then 429 with no build of its own.
    for (let i = 0; i < 5; i++) expect((await push(app, tool.name, tool.webhook_secret)).status).toBe(202);
    await expectLimited(await push(app, tool.name, tool.webhook_secret, key));
    await expectLimited(await push(app, tool.name, tool.webhook_secret));
    expect(await app.store.listBuilds(tool.name, 100)).toHaveLength(6);
  });

  it("limits the redeploy hook per tool too", async () => {
    const app = await appWith(2, 1000);
    const tool = await app.createTool("redeployed");
    await app.store.updateTool(tool.name, {
      source: { url: "http://example.com/x.git", ref: "refs/heads/main", default_branch: "main" },
    });
    const redeploy = () =>
      fetch(`${app.url}/hooks/redeploy/${tool.name}`, {
        method: "POST",
        headers: { "x-slipway-token": new URL(tool.redeploy_url).searchParams.get("token")! },
      });
    for (let i = 0; i < 2; i++) expect((await redeploy()).status).toBeLessThan(300);
    await expectLimited(await redeploy());
  });

  it("is off when a limit is 0", async () => {
    const app = await appWith(0, 0);
    const tool = await app.createTool("unlimited");
    for (let i = 0; i < 30; i++) expect((await push(app, tool.name, tool.webhook_secret)).status).toBe(202);
  });
});
