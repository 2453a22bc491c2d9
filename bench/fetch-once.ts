/**
 * One source fetch with the builder's fetcher, in a process of its own so the bench can read its time
 * and peak memory the same way as for `git clone`. Usage: fetch-once <url> <ref> <commit> <dest>.
 */
import os from "node:os";
import { IsomorphicGitFetcher } from "../services/adapters/git/fetcher.js";
import { memoryLogger } from "../services/platform/logger.js";

const [url, ref, commit, dest] = process.argv.slice(2);
if (!url || !ref || !commit || !dest) throw new Error("usage: fetch-once <url> <ref> <commit> <dest>");
const fetcher = IsomorphicGitFetcher.create({
  maxTotalBytes: 512 * 1024 * 1024,
  maxFileBytes: 100 * 1024 * 1024,
  workDir: os.tmpdir(),
  logger: memoryLogger(),
});
await fetcher.fetch({ url, ref, commit }, dest);
