import { pino, type Logger as PinoLogger } from "pino";
import { prettyStream } from "./pretty-log.js";

/** The logging port: a fixed message, variables in fields. */
export interface Logger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
  child(fields: Record<string, unknown>): Logger;
}

/**
 * Secrets are redacted by configuration, not by care: any field with one of these names, at the top
 * level or one object down, is replaced before it is written.
 */
const REDACT_KEYS = [
  "token",
  "secret",
  "password",
  "authorization",
  "webhook_secret",
  "redeploy_token",
  "admin_token",
  "x-gitlab-token",
  "value",
  // A GitLab link's credentials, should a link record ever reach a log line.
  "access_token",
  "deploy_token",
];
const REDACT_PATHS = [
  ...REDACT_KEYS,
  ...REDACT_KEYS.map((k) => `*.${k}`),
  'req.headers["x-gitlab-token"]',
  "req.headers.authorization",
  "req.query.token",
];

export function createLogger(options: {
  level: string;
  destination?: NodeJS.WritableStream;
  /** One readable line per entry instead of JSON: for a person at a terminal, not for log collectors. */
  pretty?: boolean;
}): Logger {
  const destination = options.destination ?? process.stdout;
  // Redaction happens before the formatter sees a line, so the readable form is as safe as the JSON.
  const base: PinoLogger = pino(
    {
      level: options.level,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      serializers: { err: errorFields },
      base: undefined,
    },
    options.pretty ? prettyStream(destination) : destination,
  );
  return wrap(base);
}

/**
 * How `{ err }` is written: type, message, code, stack and the causes' messages, nothing else. pino's
 * own serializer copies every enumerable property, and client libraries hang the failed request on
 * their errors (gitbeaker's `cause.request` holds the PRIVATE-TOKEN header), which redaction by key
 * name cannot be trusted to catch.
 */
export function errorFields(error: unknown, depth = 0): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const code = (error as { code?: unknown }).code;
  return {
    type: error.name,
    message: error.message,
    ...(typeof code === "string" || typeof code === "number" ? { code } : {}),
    ...(depth === 0 ? { stack: error.stack } : {}),
    ...(error.cause !== undefined && depth < 3 ? { cause: errorFields(error.cause, depth + 1) } : {}),
  };
}

function wrap(l: PinoLogger): Logger {
  return {
    debug: (f, m) => l.debug(f, m),
    info: (f, m) => l.info(f, m),
    warn: (f, m) => l.warn(f, m),
    error: (f, m) => l.error(f, m),
    child: (f) => wrap(l.child(f)),
  };
}

/** For unit tests: records entries so a test can assert that nothing secret was written. */
export function memoryLogger(): Logger & { entries: { level: string; msg: string; fields: object }[] } {
  const entries: { level: string; msg: string; fields: object }[] = [];
  const make = (bound: Record<string, unknown>): Logger => ({
    debug: (f, m) => entries.push({ level: "debug", msg: m, fields: { ...bound, ...f } }),
    info: (f, m) => entries.push({ level: "info", msg: m, fields: { ...bound, ...f } }),
    warn: (f, m) => entries.push({ level: "warn", msg: m, fields: { ...bound, ...f } }),
    error: (f, m) => entries.push({ level: "error", msg: m, fields: { ...bound, ...f } }),
    child: (f) => make({ ...bound, ...f }),
  });
  return Object.assign(make({}), { entries });
}
