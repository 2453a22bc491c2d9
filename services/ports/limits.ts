/**
 * A container limit that ended a process: the kernel killed something in it for memory, or a fork
 * failed because the container had as many processes as it may. Reported instead of a bare exit code
 * (137) or a timeout, so that the maintainer reads what to change.
 */
export type LimitExceeded =
  { readonly kind: "memory"; readonly limitMb: number } | { readonly kind: "pids"; readonly limit: number };

/** `ran out of memory (limit 2048 MiB)`, `started too many processes (limit 2048)`; the caller names the subject. */
export function describeLimit(hit: LimitExceeded): string {
  return hit.kind === "memory"
    ? `ran out of memory (limit ${hit.limitMb} MiB)`
    : `started too many processes (limit ${hit.limit})`;
}
