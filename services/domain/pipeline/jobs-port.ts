import type { JobName, JobPayload } from "./jobs.js";

/** The queue as the domain sees it. */
export interface Enqueuer {
  enqueue<N extends JobName>(name: N, payload: JobPayload<N>, jobId: string): Promise<void>;
  removeWaiting(name: JobName, jobId: string): Promise<boolean>;
}
