import { lookup } from "node:dns/promises";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo, Server } from "node:net";
import os from "node:os";
import path from "node:path";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProcessFetcher } from "../../services/adapters/git/fetch-process.js";
import { RemoteRefs } from "../../services/adapters/git/remote-refs.js";
import { memoryLogger } from "../../services/platform/logger.js";
import { forbiddenAddressKind } from "../../services/platform/source-addresses.js";
import { git, gitRepo } from "../helpers/apps.js";
import { gitHttpBackend } from "../helpers/git-http.js";

/**
 * The builder as a tool owner would aim it: at services on loopback by a name that resolves there, and
 * through an allowed host that redirects elsewhere on loopback. The targets are loopback git servers
 * that record every request: "refused" means they were never even connected to, and the build says why.
 */
let root: string;
let commit: string;
/** Serves the repository; every request it gets is recorded. */
let target: Server;
let targetPort: number;
const targetHits: string[] = [];
/** An allow-listed host that redirects every request to `target`. */
let bouncer: Server;
let bouncerPort: number;
/** A name of this machine that resolves to loopback (not `localhost`, which is refused as written). */
let loopbackName: string;

async function listen(app: express.Express): Promise<Server> {
  return new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
}

function fetcher(allowHosts: string[]) {
  return ProcessFetcher.create({
    entry: path.resolve(import.meta.dirname, "../../dist/services/adapters/git/fetch-child.js"),
    maxTotalBytes: 10 * 1024 * 1024,
    maxFileBytes: 1024 * 1024,
    workDir: path.join(root, "gitdirs"),
    allowHosts,
    logger: memoryLogger(),
  });
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "slipway-ssrf-"));
  const work = await gitRepo({ "index.html": "internal only\n" });
  commit = (await git(work.dir, ["rev-parse", "HEAD"])).trim();
  await git(root, ["clone", "-q", "--bare", work.dir, path.join(root, "repos", "internal.git")]);

  const app = express();
  app.use((req, _res, next) => {
    targetHits.push(`${req.method} ${req.url}`);
    next();
  });
  // Any credentials do; the builder sends none until it is asked.
  app.use(gitHttpBackend(path.join(root, "repos"), () => true));
  target = await listen(app);
  targetPort = (target.address() as AddressInfo).port;

  const redirect = express();
  redirect.use((req, res) => res.redirect(302, `http://127.0.0.1:${targetPort}${req.url}`));
  bouncer = await listen(redirect);
  bouncerPort = (bouncer.address() as AddressInfo).port;

  loopbackName = os.hostname();
  // The premise of the DNS case: this machine's own name resolves to loopback (as /etc/hosts has it).
  const resolved = await lookup(loopbackName);
  expect(forbiddenAddressKind(resolved.address), `${loopbackName} → ${resolved.address}`).toBe("loopback");
});

afterAll(async () => {
  target?.close();
  bouncer?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe("the builder's fetch", () => {
  it("refuses a host name that resolves to loopback, without connecting to it", async () => {
    targetHits.length = 0;
    const url = `http://${loopbackName}:${targetPort}/internal.git`;
    const dest = await mkdtemp(path.join(root, "dest-"));
    const error = await fetcher([])
      .fetch({ url, ref: "refs/heads/main", commit }, dest)
      .then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string },
      );
    expect(error?.code).toBe("source_rejected");
    expect(error?.message).toBe(
      `${loopbackName}:${targetPort} (it resolves to 127.0.0.1) is a loopback address: Slipway fetches source only from public addresses. Use the repository's public URL, or ask the operator to add ${loopbackName}:${targetPort} to SLIPWAY_SOURCE_ALLOW_HOSTS`,
    );
    expect(targetHits).toEqual([]);
  });

  it("refuses a redirect from an allowed host to one that is not, without following it", async () => {
    targetHits.length = 0;
    const dest = await mkdtemp(path.join(root, "dest-"));
    const error = await fetcher([`127.0.0.1:${bouncerPort}`])
      .fetch({ url: `http://127.0.0.1:${bouncerPort}/internal.git`, ref: "refs/heads/main", commit }, dest)
      .then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string },
      );
    expect(error?.code).toBe("source_rejected");
    expect(error?.message).toContain(`127.0.0.1:${targetPort} is a loopback address`);
    expect(targetHits).toEqual([]);
  });

  it("fetches from a loopback host the operator allowed", async () => {
    const dest = await mkdtemp(path.join(root, "dest-"));
    const fetched = await fetcher([`127.0.0.1:${targetPort}`]).fetch(
      { url: `http://reader:pw@127.0.0.1:${targetPort}/internal.git`, ref: "refs/heads/main", commit },
      dest,
    );
    expect(fetched.commit).toBe(commit);
  });
});

describe("the ref lookup of build start and the redeploy hook", () => {
  it("refuses a host name that resolves to loopback, and a redirect there, without connecting", async () => {
    targetHits.length = 0;
    const refs = new RemoteRefs([`127.0.0.1:${bouncerPort}`]);
    for (const url of [
      `http://${loopbackName}:${targetPort}/internal.git`,
      `http://127.0.0.1:${bouncerPort}/internal.git`,
    ]) {
      await expect(refs.resolve(url, "main")).rejects.toMatchObject({
        code: "source_rejected",
        message: expect.stringContaining("is a loopback address") as unknown,
      });
    }
    expect(targetHits).toEqual([]);
    // Allowed, the same lookup works.
    expect(
      await new RemoteRefs([`127.0.0.1:${targetPort}`]).resolve(
        `http://127.0.0.1:${targetPort}/internal.git`,
        "main",
        { username: "reader", password: "pw" },
      ),
    ).toEqual({ ref: "refs/heads/main", commit });
  });
});
