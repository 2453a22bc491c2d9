import { Writable } from "node:stream";

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO ",
  40: "WARN ",
  50: "ERROR",
  60: "FATAL",
};

/**
 * One pino JSON line as a person reads it on a terminal: `00:12:03 INFO  message  key=value …`. A line
 * with a `detail` field (a sentence already written for people, like the stack's step lines) shows
 * that instead of its fields. Anything that is not a JSON object passes through unchanged.
 */
export function prettyLine(json: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(json);
  } catch {
    return json;
  }
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return json;
  const { level, time, msg, detail, ...fields } = entry as Record<string, unknown>;
  const clock = typeof time === "number" ? new Date(time).toISOString().slice(11, 19) : "";
  const head = `${clock} ${LEVELS[Number(level)] ?? String(level)} ${typeof msg === "string" ? msg : ""}`;
  if (typeof detail === "string") return `${head}: ${detail}`;
  const rest = Object.entries(fields).map(
    ([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`,
  );
  return rest.length > 0 ? `${head}  ${rest.join(" ")}` : head;
}

/** A stream pino writes its JSON lines to, which writes them pretty to `out`. */
export function prettyStream(out: NodeJS.WritableStream): Writable {
  let partial = "";
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (line) out.write(`${prettyLine(line)}\n`);
      callback();
    },
  });
}
