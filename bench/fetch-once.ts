/**
 * One source fetch with the builder's fetcher, in a process of its own so the bench can read its time
 * and peak memory the same way as for `git clone`. Usage: fetch-once <url> <ref> <commit> <dest>
 * [--in-process]. The builder runs each fetch in a child process (ProcessFetcher); this process stands in
 * for the server. It prints one JSON line: `fetchPeakKiB`, the peak RSS of the process that fetched (the
 * child, or this one with --in-process), and `selfPeakKiB`, this process's own.
 */
import os from "node:os";
import { ProcessFetcher } from "../services/adapters/git/fetch-process.js";
import { memoryLogger } from "../services/platform/logger.js";

const [url, ref, commit, dest, mode] = process.argv.slice(2);
if (!url || !ref || !commit || !dest) {
  throw new Error("usage: fetch-once <url> <ref> <commit> <dest> [--in-process]");
}
const logger = memoryLogger();
const limits = {
  maxTotalBytes: 512 * 1024 * 1024,
  maxFileBytes: 100 * 1024 * 1024,
  workDir: os.tmpdir(),
  // The bench serves its repository itself, on loopback.
  allowHosts: [new URL(url).host],
  logger,
};
const fetcher =
  mode === "--in-process"
    ? // Imported only here, so that without --in-process this process holds no isomorphic-git.
      (await import("../services/adapters/git/fetcher.js")).IsomorphicGitFetcher.create(limits)
    : ProcessFetcher.create({
        ...limits,
        entry: new URL("../services/adapters/git/fetch-child.js", import.meta.url).pathname,
      });
await fetcher.fetch({ url, ref, commit }, dest);
const self = process.resourceUsage().maxRSS;
const child = logger.entries.find((e) => e.msg === "fetch process finished")?.fields as
  { peakRssKiB?: number } | undefined;
process.stdout.write(`${JSON.stringify({ fetchPeakKiB: child?.peakRssKiB ?? self, selfPeakKiB: self })}\n`);
