import type { Command } from "commander";
import type { Config } from "../../platform/env.js";
import { createLogger } from "../../platform/logger.js";
import { jsonOption as json, print as out } from "./options.js";

/**
 * `slipway stack push`: an operator's step before `SLIPWAY_BUILD_BACKEND=tekton` (docs/kubernetes.md).
 * It runs on this machine (podman and the stack), not through the API, and prints the settings to use.
 */
export function registerStackCommands(program: Command, config: Config): void {
  const stack = program.command("stack").description("the build stack's images");
  stack
    .command("push")
    .description(
      "push the stack's build and run images to SLIPWAY_REGISTRY_URL for cluster builds; prints the settings",
    )
    .option(
      "--suite <suite>",
      "the stack's Debian release: bookworm (Python 3.11, the default stack) or trixie (Python 3.13)",
      "bookworm",
    )
    .addOption(json())
    .action(async (o: { json?: boolean; suite: string }) => {
      // Progress goes to stderr: stdout is the settings, for `>> slipway.env`.
      const logger = createLogger({ level: config.logLevel, destination: process.stderr });
      // Loaded here: the stack and registry code is not needed by the API-calling commands.
      const { pushStackImages } = await import("./stack-push.js");
      const images = await pushStackImages(config, logger, o.suite);
      // The default stack's settings, or another's (`_TRIXIE`): the Tekton backend picks per app.
      const suffix = o.suite === "bookworm" ? "" : `_${o.suite.toUpperCase()}`;
      out(
        o.json,
        {
          suite: o.suite,
          build_image: images.build.reference,
          build_digest: images.build.digest,
          build_blobs_uploaded: images.build.uploaded,
          run_image: images.run,
        },
        () =>
          [
            `SLIPWAY_TEKTON_BUILD_IMAGE${suffix}=${images.build.reference}`,
            `SLIPWAY_TEKTON_RUN_IMAGE${suffix}=${images.run}`,
          ].join("\n"),
      );
    });
}
