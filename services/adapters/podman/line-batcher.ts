import type { ChildProcessByStdio } from "node:child_process";
import type { Readable } from "node:stream";

/** Longer lines are cut: one line must not fill a run's or a release's log. */
const MAX_LINE = 8192;

/**
 * Splits a child's stdout and stderr (`podman logs -f`) into lines and hands them on in batches — every
 * `flushMs` or `flushLines` lines, whichever comes first — so a chatty process costs one store write per
 * batch, never one per line, and nothing is held beyond one batch. Returns `end`, to call once the child
 * has closed: it hands on the last partial lines.
 */
export function batchLines(
  child: ChildProcessByStdio<null, Readable, Readable>,
  onLines: (lines: string[]) => void,
  options: { readonly flushMs: number; readonly flushLines: number },
): () => void {
  let batch: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (batch.length === 0) return;
    const lines = batch;
    batch = [];
    onLines(lines);
  };
  const add = (line: string) => {
    batch.push(line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line);
    if (batch.length >= options.flushLines) flush();
    else timer ??= setTimeout(flush, options.flushMs);
  };
  const splitter = () => {
    let pending = "";
    return {
      data: (chunk: Buffer) => {
        pending += chunk.toString("utf8");
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const l of lines) add(l);
      },
      end: () => {
        if (pending) add(pending);
        pending = "";
      },
    };
  };
  const out = splitter();
  const err = splitter();
  child.stdout.on("data", out.data);
  child.stderr.on("data", err.data);
  return () => {
    out.end();
    err.end();
    flush();
  };
}
