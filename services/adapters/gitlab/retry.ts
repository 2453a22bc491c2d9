/**
 * Bounded exponential backoff for calls to GitLab. The defaults give 5 tries over about 30 s at worst
 * (waits of up to 2, 4, 8 and 16 s), short enough that a build is never held up for long by a forge that
 * is down, long enough to ride out a GitLab deploy or a brief network drop.
 */
export interface RetryPolicy {
  /** Total tries, the first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Injectable for tests, which must not wait 30 s. */
  readonly sleep: (ms: number) => Promise<void>;
  /** In [0, 1); spreads retries of many builds so they do not hit a recovering GitLab at once. */
  readonly random: () => number;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  attempts: 5,
  baseDelayMs: 2_000,
  maxDelayMs: 16_000,
  sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
  random: Math.random,
});

export function retryPolicy(overrides: Partial<RetryPolicy> | undefined): RetryPolicy {
  const policy = { ...DEFAULT_RETRY, ...overrides };
  if (!Number.isInteger(policy.attempts) || policy.attempts < 1) {
    throw new RangeError(`retry attempts must be a positive integer, got ${policy.attempts}`);
  }
  return Object.freeze(policy);
}

/** The wait before try number `attempt + 1` (attempt counts from 1): "equal jitter" backoff. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (policy.random() * ceiling) / 2);
}

/**
 * Runs `fn` until it succeeds, `isRetryable` says no, or the tries are used up; the last error is thrown
 * with the number of tries made. `onRetry` is told before each wait (for a log line).
 */
export async function withRetry<T>(
  fn: () => Promise<T>,
  policy: RetryPolicy,
  isRetryable: (error: unknown) => boolean,
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void,
): Promise<{ value: T; attempts: number }> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return { value: await fn(), attempts: attempt };
    } catch (error) {
      if (attempt >= policy.attempts || !isRetryable(error)) throw new RetriesExhausted(error, attempt);
      const delayMs = backoffDelay(policy, attempt);
      onRetry?.({ attempt, delayMs, error });
      await policy.sleep(delayMs);
    }
  }
}

/** Carries the last error and how many tries were made; `cause` is the last error. */
export class RetriesExhausted extends Error {
  constructor(
    readonly last: unknown,
    readonly attempts: number,
  ) {
    super(`gave up after ${attempts} tries`, { cause: last });
    this.name = "RetriesExhausted";
  }
}
