/**
 * The child side of `ProcessFetcher`: receives one fetch over IPC, runs it with `IsomorphicGitFetcher`,
 * answers with the result or the error, and exits. Its log lines go to the parent, which writes them.
 */
import { SlipwayError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import { IsomorphicGitFetcher } from "./fetcher.js";
import type { ChildAnswer, ChildLogLine, ChildRequest } from "./fetch-process.js";

function send(message: ChildAnswer | ChildLogLine): Promise<void> {
  return new Promise((resolve, reject) =>
    process.send!(message, undefined, {}, (e) => (e ? reject(e) : resolve())),
  );
}

function ipcLogger(bound: Record<string, unknown>): Logger {
  const line =
    (level: ChildLogLine["log"]["level"]) =>
    (fields: Record<string, unknown>, msg: string): void =>
      void send({ log: { level, fields: { ...bound, ...fields }, msg } }).catch(() => undefined);
  return {
    debug: line("debug"),
    info: line("info"),
    warn: line("warn"),
    error: line("error"),
    child: (fields) => ipcLogger({ ...bound, ...fields }),
  };
}

async function run(message: ChildRequest): Promise<void> {
  let answer: ChildAnswer;
  try {
    const fetcher = IsomorphicGitFetcher.create({ ...message.options, logger: ipcLogger({}) });
    const fetched = await fetcher.fetch(message.request, message.dest);
    answer = { result: fetched, peakRssKiB: process.resourceUsage().maxRSS };
  } catch (error) {
    // Domain errors keep their code and details; anything else is a bug of ours, said as such.
    answer = {
      error:
        error instanceof SlipwayError
          ? { code: error.code, message: error.message, details: error.details }
          : {
              code: "internal",
              message: error instanceof Error ? error.message : String(error),
              details: undefined,
            },
      peakRssKiB: process.resourceUsage().maxRSS,
    };
  }
  await send(answer);
  // Exit now: idle keep-alive sockets to the remote would otherwise hold the process (and so the
  // build, which waits for it to close) for the agent's 5 s keep-alive.
  process.exit(0);
}

process.once("message", (message: ChildRequest) => void run(message));
