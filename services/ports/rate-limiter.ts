/** What a rate limiter answers for one request. */
export type RateDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

/**
 * Token buckets shared by every Slipway process. A bucket named `key` holds up to `perMinute` tokens
 * and refills at `perMinute` per minute, so a burst up to the limit is fine and a flood is not.
 */
export interface RateLimiter {
  take(key: string, perMinute: number): Promise<RateDecision>;
  /**
   * The bucket `key` as a store step takes from it in its own atomic step (StateStore.intakePush), so
   * a webhook's limits and its queueing cost one round trip: the same bucket `take` spends from.
   */
  bucket(key: string, perMinute: number): BucketTake;
}

/** One token from a rate limiter's bucket (see RateLimiter.bucket), refilled `perMinute`. */
export interface BucketTake {
  /** The limiter's own name for the bucket, used as it is. */
  readonly key: string;
  readonly perMinute: number;
}
