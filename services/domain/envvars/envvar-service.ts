import { ConflictError, InputError, NotFoundError } from "../../platform/errors.js";
import { newId } from "../../platform/ids.js";
import type { Logger } from "../../platform/logger.js";
import type { EnvSource, EnvVar, EnvVarStore } from "../../ports/envvars.js";
import type { ReleaseStore, RouteStore } from "../../ports/store.js";
import type { Enqueuer } from "../../ports/queue.js";
import type { Release } from "../releases/release.js";
import { ENV_LIMITS, validateEnvName, validateEnvValue } from "./envvars.js";

export interface EnvVarChange {
  readonly name: string;
  /** `set` only: true when the variable did not exist before. */
  readonly created?: boolean;
  /** The release that restarts the tool with the change, or null when nothing runs yet. */
  readonly release_id: string | null;
  readonly message: string;
}

/**
 * A tool's environment variables: validated, stored encrypted, handed to its processes at start (never
 * baked into an image), and each change rolled out as a new release of the running image, so processes
 * restart with it through the usual zero-downtime deploy and `deployment list` shows why they did.
 */
export class EnvVarService implements EnvSource {
  constructor(
    private readonly deps: {
      readonly vars: EnvVarStore;
      readonly store: ReleaseStore & RouteStore;
      readonly queue: Enqueuer;
      readonly logger: Logger;
    },
  ) {}

  list(tool: string): Promise<EnvVar[]> {
    return this.deps.vars.list(tool);
  }

  async get(tool: string, name: string): Promise<EnvVar> {
    validateEnvName(name);
    const value = await this.deps.vars.get(tool, name);
    if (value === undefined) throw new NotFoundError(`tool "${tool}" has no environment variable ${name}`);
    return { name, value };
  }

  async set(tool: string, name: string, value: string, actor: string): Promise<EnvVarChange> {
    validateEnvName(name);
    validateEnvValue(name, value);
    const written = await this.deps.vars.set(tool, name, value, ENV_LIMITS);
    if (written === "too_many") {
      throw new ConflictError(
        `tool "${tool}" already has ${ENV_LIMITS.maxCount} environment variables, the most allowed; delete one first`,
      );
    }
    if (written === "too_large") {
      throw new InputError(
        `the environment variables of "${tool}" would take more than ${ENV_LIMITS.maxTotalBytes / 1024} KiB in all; delete or shorten some first`,
      );
    }
    const verb = written === "created" ? "created" : "updated";
    const release = await this.restart(tool, `environment variable ${name} ${verb}`, actor);
    this.deps.logger.info({ tool, name, releaseId: release }, `environment variable ${verb}`);
    return {
      name,
      created: written === "created",
      release_id: release,
      message: describe(name, verb, release),
    };
  }

  async delete(tool: string, name: string, actor: string): Promise<EnvVarChange> {
    validateEnvName(name);
    if (!(await this.deps.vars.delete(tool, name))) {
      throw new NotFoundError(`tool "${tool}" has no environment variable ${name}`);
    }
    const release = await this.restart(tool, `environment variable ${name} deleted`, actor);
    this.deps.logger.info({ tool, name, releaseId: release }, "environment variable deleted");
    return { name, release_id: release, message: describe(name, "deleted", release) };
  }

  async envFor(tool: string): Promise<Record<string, string>> {
    return Object.fromEntries((await this.deps.vars.list(tool)).map((v) => [v.name, v.value]));
  }

  /**
   * Deploys the image the tool is about to run again, as a new release: the newest release still
   * deploying (so a rollout underway is not undone), else the live one. Nothing runs yet: no release.
   * `webservice restart|start` use it too (kind `restart`); `start` names the stopped release as `given`.
   */
  async restart(
    tool: string,
    why: string,
    actor: string,
    given?: Release,
    kind: "envvars" | "restart" = "envvars",
  ): Promise<string | null> {
    const { store, queue } = this.deps;
    const [route, recent] = await Promise.all([store.getRoute(tool), store.listReleases(tool, 20)]);
    const base =
      given ??
      recent.find((r) => r.status === "deploying") ??
      (route
        ? (recent.find((r) => r.id === route.release_id) ?? (await store.getRelease(route.release_id)))
        : undefined);
    if (!base) return null;
    const release: Release = {
      ...base,
      id: newId(),
      trigger: { kind, ref: base.trigger.ref, actor },
      // A restart of a rollback is a restart: it must not be listed as another rollback.
      rollback_of: undefined,
      restart_of: base.id,
      status: "deploying",
      reason: `restart: ${why}`,
      created_at: new Date().toISOString(),
      finished_at: undefined,
    };
    await store.createRelease(release);
    await queue.enqueue("deploy", { build_id: release.build_id, release_id: release.id }, release.id);
    // An env var restart that has not started yet would only restart the tool a second time: drop it.
    if (base.status === "deploying" && base.trigger.kind === "envvars") {
      const dropped = await queue.removeWaiting("deploy", base.id).catch(() => false);
      if (dropped) {
        await store.updateRelease(base.id, {
          status: "superseded",
          reason: `${base.reason ?? "restart"}; superseded by release ${release.id} before it started`,
          finished_at: new Date().toISOString(),
        });
      }
    }
    return release.id;
  }
}

function describe(name: string, verb: string, releaseId: string | null): string {
  return releaseId
    ? `${name} ${verb}; restarting the tool as release ${releaseId}`
    : `${name} ${verb}; it takes effect when the tool is next deployed`;
}
