import type { BuildStatus } from "../domain/builds/build.js";
import type { RunStatus } from "../domain/jobs/job.js";
import type { ReleaseStatus } from "../domain/releases/release.js";

/**
 * A build or release changed status, or a job run ended. The store records one with every status write, in the same atomic
 * step, so observers (commit statuses on the forge, later notifications) follow the pipeline without the
 * pipeline calling them, and a change is never recorded without its event.
 */
export type StateEvent =
  | {
      readonly kind: "build";
      readonly id: string;
      readonly tool: string;
      readonly status: BuildStatus;
      readonly reason?: string | undefined;
    }
  | {
      readonly kind: "release";
      readonly id: string;
      readonly tool: string;
      readonly build_id: string;
      readonly status: ReleaseStatus;
      readonly reason?: string | undefined;
    }
  | {
      /** A job run ended (recorded by the jobs store with the run's final status). */
      readonly kind: "job";
      /** The run's id. */
      readonly id: string;
      readonly tool: string;
      readonly job: string;
      readonly status: RunStatus;
      readonly reason?: string | undefined;
    };

/** Where an event stands in the log: the same on every delivery of that event. */
export interface EventDelivery {
  /** The event's id in the log (ordered); a handler can use it to recognise a redelivery. */
  readonly id: string;
  /** 1 on the first delivery, more when an earlier handler failed or its process died. */
  readonly attempt: number;
}

/**
 * One consumer of the durable log of state events, as a member of a named group. Every group sees every
 * event recorded after it was created; within a group each event goes to one consumer at a time. An event
 * counts as handled when the handler resolves; if it rejects or its process dies first, the event is
 * delivered again (to this consumer or another), so delivery is at least once and handlers must be
 * idempotent. Events reach one consumer in the order they were recorded; `handle` is called without
 * waiting for earlier events to finish, so a handler keeps its own order where it needs one.
 */
export interface StateEvents {
  consume(handle: (event: StateEvent, delivery: EventDelivery) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}
