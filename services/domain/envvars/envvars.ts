import { InputError } from "../../platform/errors.js";
import type { EnvVarLimits } from "../../ports/envvars.js";

/** POSIX-portable names in upper case, as Toolforge's `toolforge envvars` accepts them. */
const NAME = /^[A-Z_][A-Z0-9_]*$/;
export const MAX_NAME_LENGTH = 128;

/**
 * 32 KiB per value: podman reads `--env-file` line by line with a 64 KiB line limit, and the kernel
 * caps one environment string at 128 KiB; 32 KiB leaves room for the name and for escaping.
 */
export const MAX_VALUE_BYTES = 32 * 1024;

/**
 * 128 variables and 512 KiB in all per tool: a process's arguments and environment together must fit
 * in about 2 MiB (ARG_MAX), and the buildpacks' own launch environment needs its share.
 */
export const ENV_LIMITS: EnvVarLimits = { maxCount: 128, maxTotalBytes: 512 * 1024 };

/** Set by Slipway itself: a tool's value would be overridden or would break the process. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set(["PORT"]);

/**
 * Name spaces of the platform: SLIPWAY_ (Slipway), CNB_ (the buildpack launcher, e.g. CNB_APP_DIR) and
 * TOOL_ (Toolforge's own per-tool variables, such as TOOL_DATA_DIR, which it reserves likewise).
 */
export const RESERVED_PREFIXES: readonly string[] = ["SLIPWAY_", "CNB_", "TOOL_"];

export function validateEnvName(name: string): string {
  const shown = JSON.stringify(name.slice(0, 80));
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !NAME.test(name)) {
    const hint = NAME.test(name.toUpperCase()) ? ` (did you mean ${name.toUpperCase().slice(0, 80)}?)` : "";
    throw new InputError(
      `invalid environment variable name ${shown}${hint}: use 1-${MAX_NAME_LENGTH} upper-case letters, digits and '_', not starting with a digit`,
      { details: { field: "name" } },
    );
  }
  if (RESERVED_NAMES.has(name)) {
    throw new InputError(`${name} is set by Slipway for every webservice and cannot be changed`, {
      details: { field: "name" },
    });
  }
  const prefix = RESERVED_PREFIXES.find((p) => name.startsWith(p));
  if (prefix) {
    throw new InputError(`names starting with ${prefix} are reserved for the platform; pick another name`, {
      details: { field: "name" },
    });
  }
  return name;
}

/** Values are text without NUL or line breaks (the container runtime's env file is line based). */
export function validateEnvValue(name: string, value: string): string {
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_VALUE_BYTES) {
    throw new InputError(
      `the value of ${name} is ${bytes} bytes; at most ${MAX_VALUE_BYTES} bytes (${MAX_VALUE_BYTES / 1024} KiB) are allowed`,
      { details: { field: "value" } },
    );
  }
  if (value.includes("\0")) {
    throw new InputError(`the value of ${name} contains a NUL byte, which no environment can hold`, {
      details: { field: "value" },
    });
  }
  if (/[\r\n]/.test(value)) {
    throw new InputError(
      `the value of ${name} contains a line break; values are single lines (base64-encode multi-line secrets such as PEM keys)`,
      { details: { field: "value" } },
    );
  }
  return value;
}

/** Values of this many characters or fewer are shown as bullets only: two and two would give most away. */
export const MASK_WHOLLY_UP_TO = 8;

/**
 * A value as the dashboard shows it on request: its first and last two characters with bullets between,
 * or only bullets when it is {@link MASK_WHOLLY_UP_TO} characters or shorter; always with its length.
 */
export function maskValue(value: string): { masked: string; length: number } {
  const chars = Array.from(value);
  const length = chars.length;
  const bullets = (n: number) => "•".repeat(Math.min(n, 12));
  const masked =
    length <= MASK_WHOLLY_UP_TO
      ? bullets(length)
      : `${chars.slice(0, 2).join("")}${bullets(length - 4)}${chars.slice(-2).join("")}`;
  return { masked, length };
}
