import { readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ConflictError } from "./errors.js";
import type { Logger } from "./logger.js";

/**
 * Pid files of the children Slipway starts (Redis, the registry) under `SLIPWAY_HOME`. Line one is the
 * child's pid, line two the pid of the server that started it. A server killed with SIGKILL leaves its
 * children running on their ports; the next start on the same home stops them through these files.
 */

/** What identifies a home's own child: its binary and an argument only it carries (its config path). */
export interface ChildIdentity {
  /** Short name for logs and errors, e.g. `redis-server`. */
  readonly name: string;
  /** The binary as spawned; its basename must match the process's argv[0]. */
  readonly command: string;
  /** An absolute path inside this home that the process's command line must contain. */
  readonly marker: string;
}

export async function writePidFile(file: string, pid: number): Promise<void> {
  await writeFile(file, `${pid}\n${process.pid}\n`, { mode: 0o600 });
}

export async function removePidFile(file: string): Promise<void> {
  await rm(file, { force: true });
}

/**
 * Stops the process a pid file names if, and only if, it is this home's child left behind by a server
 * that is gone: same user, same binary, this home's config path on its command line, and its parent is
 * not the server that wrote the file. A pid reused by any other process (another home's Redis, a
 * shell) is left alone and the stale file removed. A live server on this home is an error: two
 * servers must not share one Redis and registry directory.
 */
export async function stopOrphan(file: string, who: ChildIdentity, logger: Logger): Promise<void> {
  const recorded = await readPidFile(file);
  if (!recorded) return;
  const { pid, server } = recorded;
  const proc = await processInfo(pid);
  if (!proc || !isOurs(proc, who)) {
    logger.info({ pid, pidFile: file }, "stale pid file: that process is not ours");
    await removePidFile(file);
    return;
  }
  if (server !== undefined && proc.ppid === server) {
    throw new ConflictError(
      `another Slipway server (pid ${server}) is running on ${path.dirname(path.dirname(file))} with its ` +
        `${who.name} (pid ${pid}); stop it first, or give this one its own SLIPWAY_HOME`,
    );
  }
  signal(pid, "SIGTERM");
  if (!(await gone(pid, proc.starttime, 10_000))) {
    signal(pid, "SIGKILL");
    await gone(pid, proc.starttime, 5_000);
  }
  await removePidFile(file);
  logger.warn({ pid, pidFile: file }, "stopped an orphan left by an earlier run");
}

/** Sends a signal; a process that is already gone is what we wanted. */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
  }
}

async function readPidFile(file: string): Promise<{ pid: number; server: number | undefined } | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const [pid, server] = text.split("\n").map((l) => Number(l.trim()));
  if (!pid || !Number.isInteger(pid) || pid <= 1) return undefined;
  return { pid, server: server && Number.isInteger(server) ? server : undefined };
}

interface ProcessInfo {
  readonly argv: string[];
  readonly uid: number;
  readonly ppid: number;
  /** Clock ticks since boot at which it started: tells a pid's process from a later one. */
  readonly starttime: string;
}

/** A live (not zombie) process as /proc shows it; undefined when there is none. */
async function processInfo(pid: number): Promise<ProcessInfo | undefined> {
  try {
    const [cmdline, statText, st] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, "utf8"),
      readFile(`/proc/${pid}/stat`, "utf8"),
      stat(`/proc/${pid}`),
    ]);
    // Fields after the command name, which is in parentheses and may itself hold spaces.
    const fields = statText.slice(statText.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    return {
      argv: cmdline.split("\0").filter(Boolean),
      uid: st.uid,
      ppid: Number(fields[1]),
      starttime: fields[19] ?? "",
    };
  } catch {
    return undefined;
  }
}

function isOurs(proc: ProcessInfo, who: ChildIdentity): boolean {
  const binary = proc.argv[0]?.split(" ")[0];
  return (
    proc.uid === process.getuid?.() &&
    binary !== undefined &&
    path.basename(binary) === path.basename(who.command) &&
    proc.argv.some((a) => a.includes(who.marker))
  );
}

async function gone(pid: number, starttime: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await processInfo(pid);
    if (!now || now.starttime !== starttime) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/**
 * The pid of the server that wrote a pid file, when that server still runs; undefined otherwise. Lets
 * the CLI say whether a Slipway server runs on a home when nothing answers at the address it was given.
 */
export async function liveServerOf(file: string): Promise<number | undefined> {
  const recorded = await readPidFile(file).catch(() => undefined);
  if (recorded?.server === undefined) return undefined;
  return (await processInfo(recorded.server)) ? recorded.server : undefined;
}
