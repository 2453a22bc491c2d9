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
 * The repository's hooks, both POSIX sh, as they run on every push. pre-receive refuses a push that
 * would grow the repository past the operator's cap (find and awk; starting node took 0.1 s of it).
 * post-receive hands the changed refs to the server with curl (a node process with fetch took 0.3-0.6 s
 * of every push, most of it after the answer had come). The scripts read their URL, secret, tool and
 * cap from the environment the CGI was given, so nothing secret is stored in the repository, and what
 * they print git shows the pusher as `remote: …`.
 */
export async function installHooks(repoDir: string): Promise<void> {
  const hooks = path.join(repoDir, "hooks");
  await atomicWrite(path.join(hooks, "pre-receive"), PRE_RECEIVE_SCRIPT, 0o755);
  await atomicWrite(path.join(hooks, "post-receive"), POST_RECEIVE_SCRIPT, 0o755);
  // What the hooks ran before they were sh.
  for (const old of ["slipway-pre-receive.mjs", "slipway-post-receive.mjs"])
    await rm(path.join(hooks, old), { force: true });
}

async function atomicWrite(file: string, content: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode });
  await rename(tmp, file);
}

// Whatever happens it exits 0: the refs are already updated when post-receive runs, so the most useful
// thing it can do is say what the user should do next. The secret reaches curl in a config read from
// fd 3 (a here-document), never in its arguments, which any local user can read in `ps`. The server's
// errors are JSON ({"error": {"code": …, "message": …}}): the message is what is shown.
const POST_RECEIVE_SCRIPT = String.raw`#!/bin/sh
# Installed by Slipway; rewritten when the server starts using this repository.
# Hands the refs this push changed to the Slipway server and prints its answer.
later="start a build with: slipway build start --tool ${"$"}{${HOOK_ENV.tool}:-}"
if [ -z "${"$"}{${HOOK_ENV.url}:-}" ] || [ -z "${"$"}{${HOOK_ENV.secret}:-}" ] || [ -z "${"$"}{${HOOK_ENV.tool}:-}" ]; then
  cat >/dev/null
  echo "slipway: the push was stored but not handed to Slipway; $later"
  exit 0
fi
post() {
  curl -q -sS --noproxy '*' --max-time 30 -X POST --data-binary @- -w '\n%{http_code}' \
    -K /dev/fd/3 -- "$${HOOK_ENV.url}" 2>&1 3<<EOF
header = "content-type: text/plain"
header = "${HOOK_TOOL_HEADER}: $${HOOK_ENV.tool}"
header = "${HOOK_SECRET_HEADER}: $${HOOK_ENV.secret}"
EOF
}
out=$(post)
nl='
'
code=${"$"}{out##*"$nl"}
# What came before the status, without its trailing newlines. printf, not echo: dash's echo would
# expand backslashes in the server's text.
body=$(printf '%s' "${"$"}{out%"$nl$code"}")
[ "$code" = "$out" ] && body=
case "$code" in
  2??) [ -z "$body" ] || printf '%s\n' "$body" ;;
  000) printf '%s\n' "slipway: the push was stored but Slipway could not be reached ($body); $later" ;;
  *)
    message=$(printf '%s' "$body" | sed -n 's/.*"message":"\(\([^"\\]\|\\.\)*\)".*/\1/p' | sed 's/\\"/"/g; s/\\\\/\\/g')
    printf '%s\n' "slipway: the push was stored but no build was started: ${"$"}{message:-$body}" ;;
esac
exit 0
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
