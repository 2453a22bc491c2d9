import type { Component, ComponentsConfig } from "../config/index.js";
import type { HealthCheck, ToolWorkload, WorkloadCommand } from "./model.js";

/** The release a tool's components run from: one image (by digest) built from one commit. */
export interface ReleaseSource {
  readonly id: string;
  readonly commit: string;
  /** `<registry>/tool-<tool>/<component>@sha256:…` */
  readonly image: string;
  /** Process types the image has (`/cnb/process/<type>`), when known. */
  readonly processes?: readonly string[] | undefined;
}

/** A component that cannot be rendered from this release, and why (shown in `slipway render`). */
export interface SkippedComponent {
  readonly component: string;
  readonly reason: string;
}

/**
 * How a config `command` starts. Like the CNB launcher, a command that is exactly the name of one of
 * the image's process types runs that process (`/cnb/process/<type>`: the Procfile entry with its own
 * env); anything else is a command line for `/cnb/lifecycle/launcher`. Without the list of process
 * types, a one-word command is taken as a process type only when `procfileDefault` is set (the config
 * was derived from the Procfile, whose commands are its type names).
 */
export function commandOf(
  command: string,
  processes: readonly string[] | undefined,
  procfileDefault: boolean,
): WorkloadCommand {
  const word = command.trim();
  const oneWord = /^[A-Za-z0-9._-]+$/.test(word);
  if (oneWord && (processes ? processes.includes(word) : procfileDefault)) return { process: word };
  return { shell: command };
}

function healthCheckOf(c: Component): HealthCheck | undefined {
  if (c.run.health_check_http !== undefined) return { type: "http", path: c.run.health_check_http };
  if (c.run.health_check_script !== undefined) return { type: "script", script: c.run.health_check_script };
  return undefined;
}

/**
 * The workloads a release's components config runs as. A continuous component with `publish` is a
 * webservice; one without is a worker (with a Service only if it has a port). Components built from
 * another repository have their own image, which this release did not build: they are skipped with a
 * reason rather than rendered with the wrong image. `emails`, `filelog`, `mount` and UDP ports have
 * no Kubernetes rendering yet (docs/kubernetes.md) and are ignored.
 */
export function workloadsFromConfig(
  tool: string,
  config: ComponentsConfig,
  release: ReleaseSource,
  options: { procfileDefault: boolean },
): { workloads: ToolWorkload[]; skipped: SkippedComponent[] } {
  const workloads: ToolWorkload[] = [];
  const skipped: SkippedComponent[] = [];
  for (const c of Object.values(config.components)) {
    if (c.build.kind === "source" && c.build.repository !== undefined) {
      skipped.push({
        component: c.name,
        reason: `built from ${c.build.repository}, which release ${release.id} did not build`,
      });
      continue;
    }
    const base = {
      tool,
      component: c.name,
      image: release.image,
      command: commandOf(c.run.command, release.processes, options.procfileDefault),
      cpu: c.run.cpu,
      memory: c.run.memory,
      releaseId: release.id,
      commit: release.commit,
    };
    switch (c.component_type) {
      case "continuous":
        workloads.push(
          c.run.publish !== undefined
            ? {
                ...base,
                kind: "continuous-webservice",
                port: c.run.port,
                publish: c.run.publish,
                replicas: c.run.replicas,
                healthCheck: healthCheckOf(c),
              }
            : {
                ...base,
                kind: "continuous-worker",
                port: c.run.port,
                replicas: c.run.replicas,
                healthCheck: healthCheckOf(c),
              },
        );
        break;
      case "scheduled":
        workloads.push({
          ...base,
          kind: "scheduled",
          schedule: c.run.schedule ?? "",
          retry: c.run.retry,
          timeout: c.run.timeout,
        });
        break;
      case "one-off":
        workloads.push({ ...base, kind: "one-off", retry: c.run.retry, timeout: c.run.timeout });
        break;
    }
  }
  return { workloads, skipped };
}
