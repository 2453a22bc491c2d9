import type { UnavailableError } from "../platform/errors.js";

/**
 * Whether the services every request needs (Redis) are up. The HTTP layer asks before it starts any
 * work, so a request during an outage is answered 503 at once instead of after timeouts.
 */
export interface Readiness {
  /** Undefined while ready; otherwise the error to answer with (it says when to retry). */
  check(): UnavailableError | undefined;
  /**
   * The answer for a request that failed with `error`: an UnavailableError when the outage explains
   * the failure (a dependency went away while the request ran), else undefined.
   */
  explain(error: unknown): UnavailableError | undefined;
}
