#!/usr/bin/env node
import { parseCommand, parseSettings } from "./roles/lifecycle/command.js";
import { runLifecycleCommand } from "./roles/lifecycle/run.js";
import { lifecycleEnvironment } from "./platform/env.js";
import { SlipwayError, errorMessage } from "./platform/errors.js";
import { buildpackMark, escapeOutput, failureMark } from "./domain/lifecycle/marks.js";

/**
 * slipway-lifecycle: the CNB lifecycle as a program inside the stack's build image (a Tekton step, or
 * a podman container locally). Parses its arguments and environment once, runs one phase, and turns
 * an error into one message on stderr and an exit code the step reports (CNB's where they exist). Its
 * marks (marks.ts) tell the step's follower which buildpack runs and why the step failed.
 */
async function main(): Promise<void> {
  const command = parseCommand(process.argv.slice(2));
  const env = lifecycleEnvironment();
  const settings = parseSettings(env);
  const abort = new AbortController();
  process.once("SIGTERM", () => abort.abort(new SlipwayError("cancelled", "the step was stopped")));
  process.once("SIGINT", () => abort.abort(new SlipwayError("cancelled", "the step was stopped")));
  await runLifecycleCommand(command, {
    settings,
    // Slipway's own settings (and the push credential's location) stay out of buildpacks' environment.
    stepEnv: Object.fromEntries(
      Object.entries(env).filter(
        (e): e is [string, string] => e[1] !== undefined && !/^SLIPWAY_|^DOCKER_CONFIG$/.test(e[0]),
      ),
    ),
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    signal: abort.signal,
    onLog: (line) => process.stdout.write(`${escapeOutput(line)}\n`),
    onBuildpack: (id) => process.stdout.write(`${buildpackMark(id)}\n`),
  });
}

/** CNB lifecycle exit codes: 20 no group passed detection, 51 a buildpack's build failed, 62 export. */
const EXIT_CODES: Record<string, number> = {
  invalid_input: 2,
  detect_failed: 20,
  build_failed: 51,
  export_failed: 62,
  cancelled: 130,
};

main().catch((error: unknown) => {
  const code = error instanceof SlipwayError ? error.code : "internal";
  process.stderr.write(`slipway-lifecycle: ${errorMessage(error)}\n`);
  const failure = error instanceof SlipwayError ? error : new SlipwayError("internal", errorMessage(error));
  process.stderr.write(`${failureMark(failure)}\n`);
  process.exitCode = EXIT_CODES[code] ?? 1;
});
