/**
 * Picks the line that says why a buildpack failed, for the one-line reason a maintainer reads first
 * (build record, `build show`, GitLab status). The last line is usually the tool's epilogue ("npm error
 * command failed", a stack frame, pip's "This error originates from a subprocess"), not the cause; the
 * cause is the first error line of the failing command. In order:
 *
 * 1. a network failure (the host, the connection), however deep in a retry warning it is said: it
 *    explains every later "not found";
 * 2. the first line a tool uses for its own error (a Node.js exception, `npm error` with substance, pip's
 *    `ERROR:`, a Go compiler `file.go:line:col:`, a PHP or Composer error, git's `fatal:`);
 * 3. the buildpack's own `error:` line;
 * 4. the last non-empty line.
 *
 * Pure, so it is tested on recorded real outputs (failure-cause.test.ts).
 */
export function failureCause(lines: readonly string[], maxLength = 300): string | undefined {
  const text = lines.map((l) => l.trim()).filter((l) => l !== "");
  const found =
    firstNetwork(text) ??
    text.find((l) => TOOL_ERRORS.some((re) => re.test(l)) && !BOILERPLATE.some((re) => re.test(l))) ??
    text.find((l) => /^error:/i.test(l) && !/\(above\)\.?$/.test(l)) ??
    text.find((l) => /^error:/i.test(l)) ??
    text.at(-1);
  if (found === undefined) return undefined;
  return found.length > maxLength ? `${found.slice(0, maxLength)}…` : found;
}

/** Phrases that name a network failure, from curl, git, pip (urllib3), npm and Node.js. */
const NETWORK =
  /Could not resolve host[^'"]*|Failed to establish a new connection: [^'"]*|Temporary failure in name resolution|Name or service not known|getaddrinfo (ENOTFOUND|EAI_AGAIN) \S+|connect ECONNREFUSED \S+|Connection refused|Network is unreachable|Connection timed out|Could not connect to [^'"]*/;

/**
 * The first network failure. A long line (pip's retry warning is one repr of an exception) is cut down
 * to the phrase and what follows it in the same quoted part, plus the URL path pip names at the end.
 */
function firstNetwork(lines: readonly string[]): string | undefined {
  for (const line of lines) {
    const match = NETWORK.exec(line);
    if (!match) continue;
    if (line.length <= 160) return line;
    const tail = /\)':\s*(\S+)\s*$/.exec(line);
    return `${match[0].trim()}${tail ? ` (fetching ${tail[1]})` : ""}`;
  }
  return undefined;
}

const TOOL_ERRORS: readonly RegExp[] = [
  // Node.js: the exception line (stack frames follow it and say nothing a maintainer acts on first).
  /^(Uncaught )?([A-Z][A-Za-z]*)?(Error|Exception)( \[[A-Z_]+\])?: /,
  // TypeScript, webpack, vite, eslint: `src/a.ts(3,5): error TS2304: …`, `ERROR in ./src/x.js`.
  /\berror TS\d+: /,
  /^ERROR in /,
  /^npm (ERR!|error) /,
  // pip
  /^ERROR: /,
  // Go compiler and `go mod`: file:line:col: message, and go's own failures.
  /^\S+\.go:\d+(:\d+)?: /,
  /^go: /,
  // PHP and Composer
  /^PHP (Parse|Fatal) error: /,
  /^(Parse|Fatal) error: /,
  /^- Root composer\.json requires /,
  /^Your requirements could not be resolved/,
  // git, under pip or npm fetching from a repository
  /^fatal: /,
];

/** Lines that look like errors but only frame the real one. */
const BOILERPLATE: readonly RegExp[] = [
  /^npm (ERR!|error) (code|errno|path|workspace|location|command|signal|syscall)\b/,
  /^npm (ERR!|error) Lifecycle script `[^`]+` failed with error:?$/,
  /^npm (ERR!|error) (A complete log of this run|Log files were not written|You can rerun)/,
  /^npm (ERR!|error)\s*$/,
  /^ERROR: (Exception|Command errored out)/,
  /^go: downloading /,
];
