import { z } from "zod";

/**
 * The one catalogue of queue jobs. Payloads carry ids only — the store has the rest — and are parsed
 * with zod when dequeued, because queued data outlives a deploy of Slipway itself.
 */
export const JOBS = {
  build: z.object({ build_id: z.string().min(1) }),
  deploy: z.object({ build_id: z.string().min(1), release_id: z.string().min(1) }),
} as const;

export type JobName = keyof typeof JOBS;
export type JobPayload<N extends JobName> = z.infer<(typeof JOBS)[N]>;

/** Each job name has its own queue, so builders and deployers scale (and are fair) independently. */
export const QUEUE_OF: Record<JobName, string> = { build: "slipway-builds", deploy: "slipway-deploys" };
