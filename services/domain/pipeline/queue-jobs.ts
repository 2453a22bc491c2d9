import { z } from "zod";

/**
 * The one catalogue of queue jobs. Payloads carry ids only — the store has the rest — and are parsed
 * with zod when dequeued, because queued data outlives a deploy of Slipway itself.
 */
export const QUEUE_JOBS = {
  // `tool` is optional because builds queued before it existed must still run (without a fair share).
  build: z.object({ build_id: z.string().min(1), tool: z.string().min(1).optional() }),
  deploy: z.object({ build_id: z.string().min(1), release_id: z.string().min(1) }),
} as const;

export type QueueJobName = keyof typeof QUEUE_JOBS;
export type QueueJobPayload<N extends QueueJobName> = z.infer<(typeof QUEUE_JOBS)[N]>;

/** Each job name has its own queue, so builders and deployers scale (and are fair) independently. */
export const QUEUE_OF: Record<QueueJobName, string> = { build: "slipway-builds", deploy: "slipway-deploys" };

/**
 * Jobs with a fairness group share a per-group running cap, and each group's backlog is ordered behind
 * other groups' first jobs: one tool queueing 20 builds delays another tool's build by one slot at most.
 */
export const FAIR_GROUP: {
  readonly [N in QueueJobName]?: (payload: QueueJobPayload<N>) => string | undefined;
} = {
  build: (payload) => payload.tool,
};

export function fairGroupOf<N extends QueueJobName>(
  name: N,
  payload: QueueJobPayload<N>,
): string | undefined {
  return FAIR_GROUP[name]?.(payload);
}
