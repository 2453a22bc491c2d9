import { ConflictError, NotFoundError, SlipwayError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type {
  PullCredentialStore,
  PullCredentials,
  ToolRegistryAccess,
} from "../../ports/registry-access.js";
import type { HarborClient } from "./client.js";

/** The robot's short name; Harbor makes it `robot$tool-<tool>+slipway-pull`. */
export const PULL_ROBOT_NAME = "slipway-pull";

/**
 * Harbor as the cluster profile's image store: each tool gets a private project `tool-<tool>` and a
 * robot account that may only pull from it, so one tool's pods cannot pull another tool's images.
 * Harbor shows a robot's secret once, so Slipway keeps it (encrypted, in `store`); when it is lost, the
 * robot's secret is refreshed rather than a second robot created. Each project gets a tag-retention
 * policy when Slipway first sees it (created, or existing from before), and goes with the tool.
 */
export class HarborToolRegistry implements ToolRegistryAccess {
  /**
   * Project checks under way, and the `slipway` project once known: a tool's project is read again on
   * each push (one GET), since `tools delete` in another process may have removed it since.
   */
  private readonly projects = new Map<string, Promise<number>>();
  /** One credential lookup per tool at a time, so two deploys cannot refresh each other's secret away. */
  private readonly inFlight = new Map<string, Promise<PullCredentials>>();

  constructor(
    private readonly deps: {
      readonly client: HarborClient;
      readonly store: PullCredentialStore;
      /** `host[:port]` of Harbor's registry, as in image references. */
      readonly registryHost: string;
      /** Artifacts per repository Harbor's daily tag retention keeps (the newest pushed). */
      readonly keepImages: number;
      readonly logger: Logger;
    },
  ) {}

  async preparePush(repository: string): Promise<void> {
    const project = repository.split("/")[0] ?? "";
    await this.project(project);
  }

  pullCredentials(tool: string): Promise<PullCredentials> {
    return this.once(tool, async () => {
      const stored = await this.deps.store.get(tool);
      if (stored) return this.credentialsOf(stored);
      return this.issue(tool);
    });
  }

  rotatePullCredentials(tool: string): Promise<PullCredentials> {
    return this.once(tool, async () => {
      const stored = await this.deps.store.get(tool);
      if (!stored) return this.issue(tool);
      try {
        const secret = await this.deps.client.refreshRobotSecret(stored.robot_id);
        await this.deps.store.put({ ...stored, password: secret, created_at: new Date().toISOString() });
        this.deps.logger.info(
          { tool, robotId: stored.robot_id },
          "rotated the tool's registry pull credential",
        );
        return this.credentialsOf({ ...stored, password: secret });
      } catch (error) {
        // Someone deleted the robot in Harbor: make a new one.
        if (!(error instanceof NotFoundError)) throw error;
        await this.deps.store.delete(tool);
        return this.issue(tool);
      }
    });
  }

  /** Creates the tool's robot, or (when it exists but its secret is lost) refreshes its secret. */
  private async issue(tool: string): Promise<PullCredentials> {
    const { client, store, logger } = this.deps;
    const project = `tool-${tool}`;
    const projectId = await this.project(project);
    let robot: { id: number; name: string; secret: string };
    try {
      robot = await client.createPullRobot(
        project,
        PULL_ROBOT_NAME,
        `Slipway: pods of tool ${tool} pull their images with this`,
      );
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
      const existing = await client.findRobot(projectId, PULL_ROBOT_NAME);
      if (!existing) {
        throw new SlipwayError(
          "conflict",
          `Harbor says robot ${PULL_ROBOT_NAME} of project ${project} exists but does not list it; delete it in Harbor and deploy again`,
          { cause: error },
        );
      }
      robot = { ...existing, secret: await client.refreshRobotSecret(existing.id) };
    }
    await store.put({
      tool,
      robot_id: robot.id,
      username: robot.name,
      password: robot.secret,
      created_at: new Date().toISOString(),
    });
    logger.info({ tool, robotId: robot.id, robot: robot.name }, "issued the tool's registry pull credential");
    return this.credentialsOf({ username: robot.name, password: robot.secret });
  }

  /**
   * `tools delete`: the tool's project, its repositories, robots and retention policy. The sealed pull
   * secret is the tool's state in Redis and goes with it. Idempotent.
   */
  async removeTool(tool: string): Promise<void> {
    const project = `tool-${tool}`;
    await this.deps.client.deleteProject(project);
    this.deps.logger.info({ tool, project }, "deleted the tool's Harbor project");
  }

  private project(name: string): Promise<number> {
    let known = this.projects.get(name);
    if (!known) {
      const { client, logger, keepImages } = this.deps;
      known = client.ensureProject(name).then(async ({ projectId, created, retentionId }) => {
        if (created) logger.info({ project: name }, "created Harbor project");
        // Also for projects made before Slipway set retention: the first push after the upgrade. Tool
        // projects only: `slipway` holds the shared base layer, no artifacts to retain.
        if (retentionId === undefined && name.startsWith("tool-")) {
          await client.createRetention(name, projectId, keepImages);
          logger.info({ project: name, keep: keepImages }, "set the Harbor project's tag retention");
        }
        return projectId;
      });
      // A failure is not remembered: the next push tries again.
      known.then(
        () => name.startsWith("tool-") && this.projects.delete(name),
        () => this.projects.delete(name),
      );
      this.projects.set(name, known);
    }
    return known;
  }

  private once(tool: string, work: () => Promise<PullCredentials>): Promise<PullCredentials> {
    const running = this.inFlight.get(tool);
    if (running) return running;
    const next = work().finally(() => this.inFlight.delete(tool));
    this.inFlight.set(tool, next);
    return next;
  }

  private credentialsOf(record: { username: string; password: string }): PullCredentials {
    return { registry: this.deps.registryHost, username: record.username, password: record.password };
  }
}
