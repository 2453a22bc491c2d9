import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isCommitSha } from "../services/domain/builds/build.js";
import { isValidRefName } from "../services/domain/builds/ref-name.js";
import { startHttpApp } from "./helpers/http-app.js";
import { startRedis } from "./helpers/redis.js";

/**
 * Hundreds of malformed and hostile deliveries against the real webhook receivers on real Redis. The
 * PRNG is seeded (FUZZ_SEED to replay another run), so a failure names the case that broke and
 * reproduces. What must hold for every case: no 5xx, every non-2xx answer is JSON with an error code,
 * only a well-formed push queues a build (and exactly one), and the server answers a valid push after.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const fixturesDir = path.join(import.meta.dirname, "fixtures", "gitlab");
const fixture = (name: string) =>
  JSON.parse(readFileSync(path.join(fixturesDir, name), "utf8")) as Record<string, unknown>;
const pushHook = fixture("gitlab-push-hook.docs.json");
const tagHook = fixture("gitlab-tag-push-hook.docs.json");

let redis: Awaited<ReturnType<typeof startRedis>>;
let app: Awaited<ReturnType<typeof startHttpApp>>;
let tool: Awaited<ReturnType<typeof app.createTool>>;
let redeployToken: string;

beforeAll(async () => {
  redis = await startRedis();
  app = await startHttpApp(
    redis.url,
    { resolve: () => Promise.resolve({ ref: "refs/heads/master", commit: "d".repeat(40) }) },
    // Limits on, but high: the limiter is part of every request's path and must not break either.
    { webhookRate: { perTool: 1_000_000, perAddress: 1_000_000 } },
  );
  tool = await app.createTool("fuzzed");
  redeployToken = new URL(tool.redeploy_url).searchParams.get("token")!;
  await app.store.updateTool(tool.name, {
    source: {
      url: "http://example.com/mike/diaspora.git",
      ref: "refs/heads/master",
      default_branch: "master",
    },
    // Every tag deploys, so a hostile tag name is stopped by validation, not by the policy.
    deploy: { branches: [], tags: ["**"] },
  });
});
afterAll(async () => {
  await app?.close();
  await redis?.stop();
});

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = mulberry32(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
let shaCounter = 0;
const freshSha = () => (++shaCounter).toString(16).padStart(40, "f");

interface Case {
  readonly name: string;
  readonly path: string;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer | string;
}

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly text: string;
}

/** Raw node:http, so duplicated headers and any bytes go out exactly as written. */
function send(c: Case): Promise<Answer> {
  const url = new URL(app.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method: "POST", path: c.path, headers: c.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers["content-type"] ?? ""),
            text: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(c.body);
  });
}

const gitlabHeaders = (over: Record<string, string | string[]> = {}) => ({
  "content-type": "application/json",
  "x-gitlab-event": "Push Hook",
  "x-gitlab-token": tool.webhook_secret,
  ...over,
});

function gitlab(
  name: string,
  body: Buffer | string | object,
  headers: Record<string, string | string[]> = gitlabHeaders(),
): Case {
  const raw = typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return { name, path: `/hooks/gitlab/${tool.name}`, headers, body: raw };
}

/** The fixture with a commit no earlier case used, so "duplicate" never hides a wrong answer. */
function fresh(base: Record<string, unknown> = pushHook): Record<string, unknown> {
  const sha = freshSha();
  return { ...base, after: sha, checkout_sha: sha };
}

function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
}

/** Every path to a value in a JSON document, objects and arrays included. */
function paths(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = at.length ? [at] : [];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (value && typeof value === "object")
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]));
  return out;
}

function setAt(doc: unknown, at: (string | number)[], v: unknown): unknown {
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  let node = copy;
  for (const k of at.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  node[at[at.length - 1]!] = v;
  return copy;
}

const WRONG_VALUES: readonly unknown[] = [
  null,
  0,
  -1,
  1e308,
  true,
  "",
  "x",
  "\u0000",
  [],
  {},
  [null],
  { __proto__: null },
  "a".repeat(5000),
];

const HOSTILE_REFS = [
  "refs/heads/mas\u0000ter",
  "refs/heads/../../../etc/passwd",
  "refs/heads/..",
  "refs/heads/a..b",
  "refs/heads/.hidden",
  "refs/heads/main.lock",
  "refs/heads/a b",
  "refs/heads/a~1",
  "refs/heads/a^",
  "refs/heads/a:b",
  "refs/heads/a?",
  "refs/heads/a*",
  "refs/heads/a[",
  "refs/heads/a\\b",
  "refs/heads/@{-1}",
  "refs/heads/a//b",
  "refs/heads/a/",
  "refs/heads/a.",
  "refs/heads/\u001b[31mred",
  "refs/heads/\u007f",
  "refs/heads/-rf",
  "refs/heads/\u202emaster",
  "/refs/heads/master",
  "refs/heads/" + "x".repeat(2000),
];

function cases(): Case[] {
  const out: Case[] = [];
  // Random bytes, sometimes starting like JSON.
  for (let i = 0; i < 60; i++) {
    const bytes = randomBytes(1 + int(2048));
    if (i % 3 === 0) bytes[0] = "{".charCodeAt(0);
    out.push(gitlab(`random bytes #${i}`, bytes));
  }
  // Truncated JSON.
  const full = JSON.stringify(fresh());
  for (let i = 0; i < 40; i++) out.push(gitlab(`truncated at ${i}`, full.slice(0, int(full.length - 1))));
  // Deep nesting, as the whole body and inside fields.
  const deepArray = "[".repeat(10_000) + "]".repeat(10_000);
  const deepObject = '{"a":'.repeat(10_000) + "1" + "}".repeat(10_000);
  out.push(gitlab("10k nested arrays", deepArray));
  out.push(gitlab("10k nested objects", deepObject));
  for (const field of ["project", "ref", "commits", "checkout_sha", "user_name"]) {
    const doc = JSON.stringify({ ...fresh(), [field]: "__DEEP__" });
    out.push(gitlab(`10k nested objects in ${field}`, doc.replace('"__DEEP__"', deepObject)));
  }
  out.push(gitlab("100k nested arrays (over the body limit)", "[".repeat(100_000) + "]".repeat(100_000)));
  // Huge strings: over the body limit, and just under it in a field.
  out.push(gitlab("1 MiB body", JSON.stringify({ ...fresh(), user_name: "x".repeat(1024 * 1024) })));
  out.push(gitlab("60 KiB ref", { ...fresh(), ref: "refs/heads/" + "y".repeat(60_000) }));
  out.push(gitlab("60 KiB user name", { ...fresh(), user_name: "z".repeat(60_000) }));
  out.push(gitlab("60 KiB username", { ...fresh(), user_username: "w".repeat(60_000) }));
  out.push(
    gitlab("60 KiB url", { ...fresh(), project: { id: 1, git_http_url: "http://e/" + "u".repeat(60_000) } }),
  );
  // Wrong types for every field of the real fixtures (a seeded sample of the wrong values per field).
  for (const [base, event] of [
    [pushHook, "Push Hook"],
    [tagHook, "Tag Push Hook"],
  ] as const) {
    for (const at of paths(base)) {
      for (const v of [pick(WRONG_VALUES), pick(WRONG_VALUES)]) {
        const doc =
          at[0] === "after" || at[0] === "checkout_sha"
            ? setAt(fresh(base), at, v)
            : setAt(fresh(base), at, v);
        out.push(
          gitlab(
            `${event}: ${at.join(".")} = ${JSON.stringify(v)?.slice(0, 20)}`,
            doc as object,
            gitlabHeaders({ "x-gitlab-event": event }),
          ),
        );
      }
    }
  }
  // Prototype pollution keys, at the top and nested.
  const pollute = '{"polluted":"yes","isAdmin":true}';
  for (const spot of ["top", "project"]) {
    for (const key of ["__proto__", "constructor", "prototype"]) {
      const body = JSON.stringify(fresh());
      const injected =
        spot === "top"
          ? body.replace(/^\{/, `{"${key}":${key === "constructor" ? `{"prototype":${pollute}}` : pollute},`)
          : body.replace('"project":{', `"project":{"${key}":${pollute},`);
      out.push(gitlab(`${key} in ${spot}`, injected));
    }
  }
  out.push(gitlab("__proto__ as ref", { ...fresh(), ref: "__proto__" }));
  // Hostile refs and default branches (the default branch decides what deploys).
  for (const ref of HOSTILE_REFS) {
    const name = ref.replace(/^refs\/heads\//, "");
    const project = { ...(pushHook.project as object), default_branch: name };
    out.push(gitlab(`ref ${JSON.stringify(ref).slice(0, 40)}`, { ...fresh(), ref, project }));
    out.push(
      gitlab(
        `tag ${JSON.stringify(ref).slice(0, 40)}`,
        { ...fresh(tagHook), ref: ref.replace("heads", "tags") },
        gitlabHeaders({ "x-gitlab-event": "Tag Push Hook" }),
      ),
    );
  }
  // Hostile source URLs.
  for (const url of [
    "file:///etc/passwd",
    "ext::sh -c touch% /tmp/pwned",
    "javascript:alert(1)",
    "ssh://git@e/x",
    "http://",
    "-uhttp://e/x",
  ]) {
    out.push(
      gitlab(`git_http_url ${url}`, {
        ...fresh(),
        project: { ...(pushHook.project as object), git_http_url: url },
      }),
    );
  }
  // Headers: missing, duplicated, wrong.
  const okBody = () => JSON.stringify(fresh());
  out.push(gitlab("no token", okBody(), gitlabHeaders({ "x-gitlab-token": [] })));
  out.push(
    gitlab(
      "duplicated token",
      okBody(),
      gitlabHeaders({ "x-gitlab-token": [tool.webhook_secret, tool.webhook_secret] }),
    ),
  );
  out.push(
    gitlab("two tokens", okBody(), gitlabHeaders({ "x-gitlab-token": ["wrong", tool.webhook_secret] })),
  );
  out.push(gitlab("huge token", okBody(), gitlabHeaders({ "x-gitlab-token": "t".repeat(8000) })));
  out.push(gitlab("no event", okBody(), gitlabHeaders({ "x-gitlab-event": [] })));
  out.push(
    gitlab("duplicated event", okBody(), gitlabHeaders({ "x-gitlab-event": ["Push Hook", "Push Hook"] })),
  );
  out.push(gitlab("event __proto__", okBody(), gitlabHeaders({ "x-gitlab-event": "__proto__" })));
  out.push(gitlab("event toString", okBody(), gitlabHeaders({ "x-gitlab-event": "toString" })));
  for (const type of [
    "",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/jsonx",
    "application/json; charset=utf-16",
    "application/json; charset=latin1",
  ]) {
    out.push(gitlab(`content-type "${type}"`, okBody(), gitlabHeaders({ "content-type": type })));
  }
  out.push(
    gitlab("no content-type", okBody(), {
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": tool.webhook_secret,
    }),
  );
  out.push(
    gitlab(
      "duplicated content-type",
      okBody(),
      gitlabHeaders({ "content-type": ["text/plain", "application/json"] }),
    ),
  );
  out.push(gitlab("huge idempotency key", okBody(), gitlabHeaders({ "idempotency-key": "k".repeat(8000) })));
  // Content encodings: a gzip bomb, corrupt gzip, unknown encodings.
  out.push(
    gitlab(
      "gzip bomb (20 MiB of zeros)",
      gzipSync(Buffer.alloc(20 * 1024 * 1024)),
      gitlabHeaders({ "content-encoding": "gzip" }),
    ),
  );
  out.push(
    gitlab(
      "corrupt gzip",
      Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6]),
      gitlabHeaders({ "content-encoding": "gzip" }),
    ),
  );
  out.push(gitlab("brotli claimed", okBody(), gitlabHeaders({ "content-encoding": "br" })));
  out.push(gitlab("unknown encoding", okBody(), gitlabHeaders({ "content-encoding": "x-evil" })));
  // Paths: no tool, odd tool names.
  for (const p of [
    "/hooks/gitlab",
    "/hooks/gitlab/..%2f..%2fetc",
    "/hooks/gitlab/%00",
    "/hooks/gitlab/%E0%A4%A",
    "/hooks/gitlab/__proto__",
    "/hooks/gitlab/" + "n".repeat(3000),
  ]) {
    out.push({
      name: `path ${p.slice(0, 40)}`,
      path: p,
      headers: gitlabHeaders({ "x-gitlab-token": "not-a-secret" }),
      body: okBody(),
    });
  }
  // The redeploy hook: tokens in every place and shape, odd tool names, bodies it must ignore.
  const redeploy = (
    name: string,
    p: string,
    headers: Record<string, string | string[]> = {},
    body: Buffer | string = "",
  ): Case => ({ name, path: p, headers, body });
  for (const q of [
    "",
    "?token=",
    "?token=wrong",
    "?token[]=x",
    "?token=a&token=b",
    `?token=${"t".repeat(5000)}`,
    "?token=%E0%A4%A",
    "?__proto__[token]=x",
  ]) {
    out.push(redeploy(`redeploy query ${q.slice(0, 30)}`, `/hooks/redeploy/${tool.name}${q}`));
  }
  out.push(
    redeploy("redeploy header duplicated", `/hooks/redeploy/${tool.name}`, {
      "x-slipway-token": ["wrong", redeployToken],
    }),
  );
  for (const p of [
    "/hooks/redeploy/..%2f..",
    "/hooks/redeploy/%00",
    "/hooks/redeploy/__proto__",
    "/hooks/redeploy/constructor",
    "/hooks/redeploy/%E0%A4%A",
    "/hooks/redeploy/" + "r".repeat(3000),
  ]) {
    out.push(redeploy(`redeploy path ${p.slice(0, 40)}`, `${p}?token=${redeployToken}`));
  }
  for (let i = 0; i < 20; i++) {
    out.push(
      redeploy(
        `redeploy random body #${i}`,
        `/hooks/redeploy/${tool.name}?token=wrong`,
        { "content-type": pick(["application/json", "text/plain", "application/octet-stream"]) },
        randomBytes(int(4096)),
      ),
    );
  }
  out.push(
    redeploy(
      "redeploy gzip bomb",
      `/hooks/redeploy/${tool.name}?token=wrong`,
      { "content-encoding": "gzip" },
      gzipSync(Buffer.alloc(20 * 1024 * 1024)),
    ),
  );
  return out;
}

/**
 * Cases whose payload is still a well-formed push (the hostile part is ignored, clipped or legal in
 * git); every other case is invalid and must queue nothing.
 */
function mayQueue(name: string): boolean {
  return (
    /^(Push Hook|Tag Push Hook): /.test(name) ||
    /^(__proto__|constructor|prototype) in /.test(name) ||
    /^content-type "application\/json; charset=/.test(name) ||
    [
      "10k nested objects in commits",
      "60 KiB user name",
      "60 KiB username",
      'ref "refs/heads/-rf"',
      'ref "refs/heads/\u202emaster"',
      'tag "refs/heads/-rf"',
      'tag "refs/heads/\u202emaster"',
      "huge idempotency key",
    ].includes(name)
  );
}

describe("webhook fuzzing", () => {
  it(`survives hostile deliveries (seed ${SEED}) and still takes a valid push`, async () => {
    const all = cases();
    expect(all.length).toBeGreaterThan(300);
    const queued: { name: string; buildId: string }[] = [];
    const problems: string[] = [];
    const statuses = new Map<number, number>();
    for (const c of all) {
      let answer: Answer;
      try {
        answer = await send(c);
      } catch (error) {
        // The server may cut a request off (e.g. a body over the limit); it must not have died.
        answer = { status: 0, type: "", text: String(error) };
      }
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      if (process.env.FUZZ_VERBOSE) console.log(`${answer.status} ${c.name} ${answer.text.slice(0, 120)}`);
      if (answer.status >= 500) problems.push(`${c.name}: ${answer.status} ${answer.text.slice(0, 200)}`);
      if (answer.status >= 400 || answer.status === 0) {
        if (answer.status === 0) continue;
        let code: unknown;
        try {
          code = (JSON.parse(answer.text) as { error?: { code?: unknown } }).error?.code;
        } catch {
          code = undefined;
        }
        if (!answer.type.startsWith("application/json") || typeof code !== "string")
          problems.push(
            `${c.name}: ${answer.status} without a JSON error code: ${answer.text.slice(0, 200)}`,
          );
      } else if (answer.status === 202) {
        const body = JSON.parse(answer.text) as { status: string; build_id: string };
        queued.push({ name: c.name, buildId: body.build_id });
        if (!mayQueue(c.name)) problems.push(`${c.name}: an invalid delivery queued build ${body.build_id}`);
      }
    }
    expect(problems).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();

    // Only well-formed pushes queued a build, and each answer "queued" is exactly one build record.
    const wrongBuilds: string[] = [];
    for (const q of queued) {
      const build = await app.store.getBuild(q.buildId);
      if (!build) wrongBuilds.push(`${q.name}: answered queued but no build ${q.buildId}`);
      else if (
        !isValidRefName(build.ref) ||
        !isCommitSha(build.commit) ||
        !/^https?:\/\/[^\s]+$/.test(build.source_url) ||
        (build.trigger.actor ?? "").length > 255
      ) {
        const { ref, commit, source_url, trigger } = build;
        wrongBuilds.push(`${q.name}: ${JSON.stringify({ ref, commit, source_url, trigger }).slice(0, 300)}`);
      }
    }
    expect(wrongBuilds).toEqual([]);
    const recorded = await app.store.listBuilds(tool.name, 100_000);
    expect(recorded.length).toBe(queued.length);
    const byStatus = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}:${n}`);
    console.log(
      `webhook fuzz: ${all.length} cases (seed ${SEED}), ${queued.length} queued; ${byStatus.join(" ")}`,
    );

    // Still alive and serving.
    const res = await send(gitlab("valid push afterwards", fresh()));
    expect(res.status).toBe(202);
  });
});
