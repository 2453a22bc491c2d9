import { createHash, timingSafeEqual } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { InputError } from "../../platform/errors.js";

/** One line of what git hands a post-receive hook. All zeros as `old` is a creation, as `new` a deletion. */
export interface RefUpdate {
  readonly old: string;
  readonly new: string;
  readonly ref: string;
}

/** Header names shared by the hook script and the hook endpoint. */
export const HOOK_SECRET_HEADER = "x-slipway-hook-secret";
export const HOOK_TOOL_HEADER = "x-slipway-tool";
/** Environment the CGI passes down to the hook; never written to the repository. */
export const HOOK_ENV = {
  url: "SLIPWAY_HOOK_URL",
  secret: "SLIPWAY_HOOK_SECRET",
  tool: "SLIPWAY_TOOL",
  /** The operator's cap on a repository's size in bytes, which the pre-receive hook enforces. */
  maxRepoBytes: "SLIPWAY_MAX_REPO_BYTES",
} as const;

const OID = "[0-9a-f]{40}(?:[0-9a-f]{24})?";
const LINE = new RegExp(`^(${OID}) (${OID}) (refs/[^\\s]+)$`);
const MAX_UPDATES = 10_000;

/** Parses the `<old> <new> <ref>` lines git feeds a post-receive hook. */
export function parseHookPayload(text: string): RefUpdate[] {
  const updates: RefUpdate[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line === "") continue;
    const m = LINE.exec(line);
    if (!m) throw new InputError(`malformed ref update line "${line.slice(0, 200)}"`);
    if (m[3]!.includes("..") || m[3]!.endsWith("/") || m[3]!.endsWith(".lock")) {
      throw new InputError(`invalid ref name "${m[3]!.slice(0, 200)}"`);
    }
    updates.push({ old: m[1]!, new: m[2]!, ref: m[3]! });
    if (updates.length > MAX_UPDATES)
      throw new InputError(`more than ${MAX_UPDATES} ref updates in one push`);
  }
  return updates;
}

/**
 * Constant-time comparison of the hook secret. Both sides are hashed first so that the comparison has
 * equal lengths whatever was sent, and the length of the secret leaks nothing either.
 */
export function hookSecretMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The repository's hooks. pre-receive refuses a push that would grow the repository past the operator's
 * cap: POSIX sh with find and awk, since it runs on every push and starting node took 0.1 s of it.
 * post-receive hands the changed refs to the server: sh that execs this machine's node on a small
 * script beside it. The scripts read their URL, secret, tool and cap from the environment the CGI was
 * given, so nothing secret is stored in the repository, and what they print git shows the pusher as
 * `remote: …`.
 */
export async function installHooks(repoDir: string, nodePath: string): Promise<void> {
  const hooks = path.join(repoDir, "hooks");
  await atomicWrite(path.join(hooks, "pre-receive"), PRE_RECEIVE_SCRIPT, 0o755);
  // What pre-receive ran before it was sh.
  await rm(path.join(hooks, "slipway-pre-receive.mjs"), { force: true });
  const script = path.join(hooks, "slipway-post-receive.mjs");
  await atomicWrite(script, POST_RECEIVE_SCRIPT, 0o644);
  const sh = [
    "#!/bin/sh",
    "# Installed by Slipway; rewritten when the server starts using this repository.",
    `exec ${shellQuote(nodePath)} ${shellQuote(script)}`,
    "",
  ].join("\n");
  await atomicWrite(path.join(hooks, "post-receive"), sh, 0o755);
}

async function atomicWrite(file: string, content: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode });
  await rename(tmp, file);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// Plain JavaScript run by node on the server machine. Whatever happens it exits 0: the refs are already
// updated when post-receive runs, so the most useful thing it can do is say what the user should do next.
const POST_RECEIVE_SCRIPT = `// Installed by Slipway: hands the refs this push changed to the Slipway server and prints its answer.
const url = process.env.${HOOK_ENV.url};
const secret = process.env.${HOOK_ENV.secret};
const tool = process.env.${HOOK_ENV.tool};
const later = "start a build with: slipway build start --tool " + (tool ?? "");
let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;
if (!url || !secret || !tool) {
  console.log("slipway: the push was stored but not handed to Slipway; " + later);
  process.exit(0);
}
try {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "text/plain", "${HOOK_SECRET_HEADER}": secret, "${HOOK_TOOL_HEADER}": tool },
    body: input,
    signal: AbortSignal.timeout(30000),
  });
  const text = await res.text();
  if (res.ok) {
    if (text.trim() !== "") console.log(text.trimEnd());
  } else {
    let message = text.trim();
    try {
      message = JSON.parse(text).error.message ?? message;
    } catch {}
    console.log("slipway: the push was stored but no build was started: " + message);
  }
} catch (e) {
  console.log("slipway: the push was stored but Slipway could not be reached (" + e.message + "); " + later);
}
`;

// Runs while the pushed objects sit in git's quarantine directory (inside objects/, so counted here):
// a refusal (exit 1) makes git delete them, and nothing of the push is stored.
const PRE_RECEIVE_SCRIPT = `#!/bin/sh
# Installed by Slipway; rewritten when the server starts using this repository.
# Refuses a push that would make the repository larger than the operator's cap.
cat >/dev/null
max="\${${HOOK_ENV.maxRepoBytes}:-}"
# Files only, by their own size (symlinks not followed), quarantined objects included.
total=$(find "\${GIT_DIR:-.}/objects" -type f -printf '%s\\n' 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }')
exec awk -v total="$total" -v max="$max" 'BEGIN {
  if (max + 0 <= 0 || total + 0 <= max + 0) exit 0
  printf "slipway: push refused: with it the repository would take %.1f MiB, over this server'"'"'s limit of %.1f MiB per tool (SLIPWAY_MAX_REPO_MB). Nothing was stored. Remove large files from the history (git filter-repo) or ask the operator to raise the limit.\\n", total / 1048576, max / 1048576
  exit 1
}'
`;
