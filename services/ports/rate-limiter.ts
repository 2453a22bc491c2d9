/** What a rate limiter answers for one request. */
export type RateDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

/**
 * Token buckets shared by every Slipway process. A bucket named `key` holds up to `perMinute` tokens
 * and refills at `perMinute` per minute, so a burst up to the limit is fine and a flood is not.
 */
export interface RateLimiter {
  take(key: string, perMinute: number): Promise<RateDecision>;
}
