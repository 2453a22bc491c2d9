import { mkdir } from "node:fs/promises";
import type { Config } from "../../platform/env.js";
import type { Logger } from "../../platform/logger.js";
import { apiProcessEnv, isApiProcess, startApiProcesses } from "./api-processes.js";
import { buildpackOrder } from "./local-builder.js";
import { buildBackend } from "./build-backends/index.js";
import { runtimeProfile } from "./profiles/index.js";
import { startApiRole } from "./roles/api.js";
import { registerBuilder, startBuilderRole } from "./roles/builder.js";
import { startDeployerRole } from "./roles/deployer.js";
import { startShared } from "./roles/shared.js";
import { Shutdown } from "./roles/shutdown.js";

export type Role = "all" | "api" | "builder" | "deployer";

export interface RunningServer {
  readonly url: string;
  readonly adminToken: string;
  /** True on the first start: the entry point shows the token once. */
  readonly adminTokenCreated: boolean;
  /** Resolves when the stack images are ready and builds can start (builder roles only). */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * `slipway server`: the local stack (Redis, registry, podman stack images) and the roles. With
 * `role: "all"` one process holds the API, webhooks, git remote, front proxy and both workers. Where
 * webservices and jobs run is the runtime profile's (profiles/), chosen once here. With
 * `SLIPWAY_API_PROCESSES` > 1 the API role runs in that many worker processes instead (api-processes.ts),
 * each of them coming through here too, as an API role alone on this process's stack.
 */
export async function startServer(
  config: Config,
  logger: Logger,
  role: Role = "all",
): Promise<RunningServer> {
  const worker = isApiProcess();
  const api = worker || role === "all" || role === "api";
  const forks = !worker && api && config.apiProcesses > 1;
  const runs = {
    api: api && !forks,
    builder: !worker && (role === "all" || role === "builder"),
    deployer: !worker && (role === "all" || role === "deployer"),
  };
  // An unknown runtime or build backend stops the start before anything runs.
  const createProfile = await runtimeProfile(config.runtime);
  const createBuildBackend = await buildBackend(config.buildBackend);
  const shutdown = new Shutdown(logger);
  const close = () => shutdown.close();
  try {
    await mkdir(config.home, { recursive: true, mode: 0o700 });
    // First, before anything starts: buildpack folders that disagree with buildpacks/order.toml stop it.
    const buildpacks = runs.builder ? await buildpackOrder(config) : undefined;
    const shared = await startShared(config, logger, shutdown, createProfile, createBuildBackend);

    const url = forks
      ? await startApiProcesses(config.apiProcesses, apiProcessEnv(shared), config.host, logger, shutdown)
      : runs.api
        ? await startApiRole(shared)
        : config.publicUrl;
    const builders = runs.builder ? await registerBuilder(shared) : undefined;
    // Every role's workers end together, before the builder registry's heartbeat stops (closers run
    // in reverse) and after the job runner and followers the deployer starts below.
    shutdown.add(async () => {
      await Promise.all(shared.workers.map((w) => w.close()));
    });
    if (runs.deployer) await startDeployerRole(shared);
    const ready = builders ? startBuilderRole(shared, builders, buildpacks) : Promise.resolve();
    const { admin } = shared;
    return { url, adminToken: admin.value, adminTokenCreated: admin.created, ready, close };
  } catch (error) {
    await close();
    throw error;
  }
}
