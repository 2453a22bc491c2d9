/** Cancels a build that has not finished (takes it off the queue, or stops its sandbox). */
export interface BuildCanceller {
  cancel(id: string): Promise<unknown>;
}
