import type { QueueJobName, QueueJobPayload } from "../domain/pipeline/queue-jobs.js";

/**
 * The queue as the domain sees it. Fair scheduling (per-tool running cap, a flooding tool's backlog
 * queued behind other tools' first builds) is the adapter's business, keyed by `FAIR_GROUP` in domain/pipeline/queue-jobs.ts.
 */
export interface Enqueuer {
  enqueue<N extends QueueJobName>(name: N, payload: QueueJobPayload<N>, jobId: string): Promise<void>;
  removeWaiting(name: QueueJobName, jobId: string): Promise<boolean>;
}
