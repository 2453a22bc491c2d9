import { readMark, type StepFailure } from "../../domain/lifecycle/marks.js";

/** Lines of a failed step kept for the build's `log_tail`. */
export const TAIL_LINES = 30;

/**
 * What a follower (the local executor, the Tekton backend) keeps of one step's output: its last lines,
 * and what slipway-lifecycle's marks said (the buildpack building, the step's failure). Marks are taken
 * out of the log.
 */
export class StepOutput {
  readonly tail: string[] = [];
  buildpack: string | undefined;
  failure: StepFailure | undefined;

  /** The line as the build log shows it, or undefined for a mark. */
  take(line: string): string | undefined {
    const mark = readMark(line);
    if (mark && "buildpack" in mark) this.buildpack = mark.buildpack;
    else if (mark) this.failure = mark.failure;
    else {
      this.tail.push(line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
      return line;
    }
    return undefined;
  }
}
