import type { BuildStatus } from "../domain/builds/build.js";
import type { ReleaseStatus } from "../domain/releases/release.js";

/**
 * A build or release changed status. Published by the store on every status write, so observers (commit
 * statuses on the forge) follow the pipeline without the pipeline calling them.
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
    };

/** Delivers state events from every process, in the order they were published. At most once. */
export interface StateEvents {
  watch(onEvent: (event: StateEvent) => void): Promise<void>;
  close(): Promise<void>;
}
