import type { JobName, JobPayload } from "./jobs.js";

/**
 * The queue as the domain sees it. Fair scheduling (per-tool running cap, a flooding tool's backlog
 * queued behind other tools' first builds) is the adapter's business, keyed by `FAIR_GROUP` in jobs.ts.
 */
export interface Enqueuer {
  enqueue<N extends JobName>(name: N, payload: JobPayload<N>, jobId: string): Promise<void>;
  removeWaiting(name: JobName, jobId: string): Promise<boolean>;
}
