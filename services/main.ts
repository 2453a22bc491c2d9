#!/usr/bin/env node
import cluster from "node:cluster";
import { buildCli } from "./roles/cli/cli.js";
import { ApiError } from "./roles/cli/client.js";
import type { Role, RunningServer } from "./roles/server/server.js";
import { ConfigError, loadConfig } from "./platform/env.js";
import { createLogger } from "./platform/logger.js";
import { SlipwayError, errorMessage } from "./platform/errors.js";

/** SIGTERM stops the server within this, whatever it waits for (a supervisor kills after about 10 s). */
const SHUTDOWN_MS = 8000;

/** Entry point: parse the environment once, run the command, turn errors into messages and exit codes. */
async function main(): Promise<void> {
  const config = loadConfig();
  const program = buildCli(config, async (role) => {
    // A terminal gets readable lines (a first start shows its stack steps); a pipe or file gets JSON.
    const base = createLogger({ level: config.logLevel, pretty: process.stdout.isTTY === true });
    // An API worker (SLIPWAY_API_PROCESSES > 1) shares the primary's output: each of its lines says which.
    const logger = cluster.worker ? base.child({ apiProcess: cluster.worker.id }) : base;
    // Loaded only for `slipway server`: the server graph (BullMQ, Kubernetes client, …) takes seconds
    // to load, and every other command is a thin API call that should start at once.
    const { startServer } = await import("./roles/server/server.js");
    // Handlers go in before the start: a SIGTERM while Redis and the registry are starting must stop
    // them too, not kill the server under them and leave them running.
    const running: { server?: RunningServer } = {};
    let stopping = false;
    const shutdown = (s: RunningServer) => {
      // Every step of close is bounded (Redis calls time out, workers are cut off while Redis is down);
      // this is the backstop that keeps SIGTERM a stop even if one of them is not. Armed only once the
      // server is up: a start still in progress finishes first, so it leaves no child behind.
      setTimeout(() => {
        logger.error({ afterMs: SHUTDOWN_MS }, "shutdown did not finish in time; exiting anyway");
        process.exit(1);
      }, SHUTDOWN_MS).unref();
      return s.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    const stop = () => {
      if (stopping) return;
      stopping = true;
      logger.info({}, "shutting down");
      if (running.server) void shutdown(running.server);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    // A closed terminal or ssh session: Node's default would exit at once and leave Redis and the
    // registry running without their owner.
    process.once("SIGHUP", stop);
    const server = await startServer(config, logger, role as Role);
    running.server = server;
    if (server.adminTokenCreated) {
      process.stdout.write(`\nAdmin token (kept in ${config.home}/admin-token):\n  ${server.adminToken}\n\n`);
    }
    if (stopping) void shutdown(server);
    else logger.info({ role: cluster.worker ? "api" : role }, "slipway started");
  });
  await program.parseAsync(process.argv);
}

main().catch((error: unknown) => {
  if (error instanceof ApiError || error instanceof SlipwayError || error instanceof ConfigError) {
    process.stderr.write(`slipway: ${error.message}\n`);
  } else {
    process.stderr.write(`slipway: ${errorMessage(error)}\n`);
  }
  process.exitCode = 1;
});
