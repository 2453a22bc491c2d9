import { NetProbe } from "../../../adapters/net/probe.js";
import { containerOwner } from "../../../adapters/podman/confinement.js";
import { PodmanJobsRuntime } from "../../../adapters/podman/jobs-runtime.js";
import { ToolNetworks } from "../../../adapters/podman/network.js";
import {
  PodmanToolContainers,
  PodmanToolImages,
  PodmanToolNetwork,
} from "../../../adapters/podman/tool-traces.js";
import { PodmanRuntime } from "../../../adapters/podman/runtime.js";
import { toolContainerUsage } from "../../../adapters/podman/stats.js";
import { PodmanWrittenLayers } from "../../../adapters/podman/written-layers.js";
import { LogFollowingRuntime } from "../../../adapters/podman/web-log-follower.js";
import { deployerOnPodman } from "../../../domain/releases/podman-rollout.js";
import { DiskWatcher } from "../../../domain/releases/disk-watcher.js";
import { WebKeeper } from "../../../domain/releases/web-keeper.js";
import { UsageSampler } from "../../../domain/usage/sampler.js";
import type { Config } from "../../../platform/env.js";
import type { DeployerParts, ProfileDeps, RuntimeProfile } from "./profile.js";

/**
 * The local profile (`SLIPWAY_RUNTIME=podman`, the default): webservices and jobs in podman containers
 * on this machine, each tool's on a network of its own, reached through this server's front proxy.
 */
export function localProfile(config: Config, deps: ProfileDeps): RuntimeProfile {
  const { store, registry, logger, closers } = deps;
  // Each tool's containers on a network of their own (one per server and tool): see ToolNetworks.
  const networks = new ToolNetworks({
    repoRoot: config.repoRoot,
    owner: containerOwner(config.home, "net"),
  });
  const owners = { web: containerOwner(config.home, "web"), jobs: containerOwner(config.home, "jobs") };
  const credentials = { host: registry.host, username: registry.username, password: registry.password };
  const podmanRuntime = () =>
    new PodmanRuntime({
      repoRoot: config.repoRoot,
      registry: credentials,
      namePrefix: containerOwner(config.home, "web"),
      networks,
    });
  const localImages = new PodmanToolImages({ repoRoot: config.repoRoot, registryHost: registry.host });
  return {
    webUrl: (t) => `http://${t}.${config.webDomain}:${config.port}/`,
    frontProxy: true,
    webservice: () => ({ runtime: podmanRuntime() }),
    toolTraces: () => [
      new PodmanToolContainers({
        repoRoot: config.repoRoot,
        toolOwners: [containerOwner(config.home, "web"), containerOwner(config.home, "jobs")],
      }),
      new PodmanToolNetwork({ repoRoot: config.repoRoot, name: (t) => networks.name(t) }),
      localImages,
    ],
    localImages,
    deployer: (d): DeployerParts => {
      // Web processes' output is followed where they are started, and kept in Redis past their containers.
      const processes = podmanRuntime();
      const runtime = new LogFollowingRuntime(processes, {
        logs: d.processLogs,
        repoRoot: config.repoRoot,
        logger: logger.child({ component: "web-logs" }),
      });
      closers.add(() => runtime.close());
      const deployer = deployerOnPodman({
        store,
        runtime,
        probe: new NetProbe(),
        logs: d.logs,
        logger: logger.child({ component: "deployer" }),
        env: d.env,
        onLive: async (release) => void (await d.jobs.syncRelease(release)),
        retention: d.retention,
        options: {
          healthTimeoutS: config.run.healthTimeoutS,
          memoryMb: config.run.memoryMb,
          cpus: config.run.cpus,
          drainMs: 1000,
        },
      });
      return {
        deployer,
        // Jobs run where the deployer runs; their definitions are in Redis, so a restart resumes them.
        jobsRuntime: new PodmanJobsRuntime({
          repoRoot: config.repoRoot,
          registry: credentials,
          namePrefix: containerOwner(config.home, "jobs"),
          networks,
        }),
        jobLimits: { memoryMb: config.run.memoryMb, cpus: config.run.cpus },
        // Podman is this machine's: the deployer role is part of the server's start.
        whenAvailable: (start) => start(),
        resume: async () => {
          const names = (await store.listTools()).map((t) => t.name);
          deployer.reconcile(names).catch((e) => logger.warn({ err: e }, "reconcile failed"));
          runtime.resume().catch((e) => logger.warn({ err: e }, "web output could not be followed again"));
        },
        startJobs: (start) => start(),
        started: () => {
          // A crashed web process comes back (with a growing wait while it keeps crashing).
          const keeper = new WebKeeper({
            runtime: processes,
            restore: (tool) => deployer.restore(tool),
            logs: d.processLogs,
            logger: logger.child({ component: "web-keeper" }),
          });
          keeper.start();
          closers.add(() => keeper.close());
          // A container that writes past SLIPWAY_RUN_DISK_MB to its own filesystem is stopped (no quota on ext4).
          const disk = new DiskWatcher({
            layers: new PodmanWrittenLayers({ repoRoot: config.repoRoot, owners }),
            logs: d.processLogs,
            logger: logger.child({ component: "disk-watcher" }),
            limitMb: config.run.diskMb,
            intervalMs: config.diskCheckMs,
          });
          disk.start();
          closers.add(() => disk.close());
          // Each tool's CPU and memory every minute, for the dashboard's last hour.
          const sampler = new UsageSampler({
            source: {
              read: (signal) =>
                toolContainerUsage({
                  repoRoot: config.repoRoot,
                  owners,
                  signal,
                }),
            },
            history: d.usageHistory,
            logger: logger.child({ component: "usage" }),
            options: config.usageSampleMs ? { intervalMs: config.usageSampleMs } : undefined,
          });
          sampler.start();
          closers.add(() => sampler.close());
        },
      };
    },
  };
}
