import type { BuildLogs } from "../../ports/logs.js";
import type { BuildStore, ReleaseStore, RouteStore } from "../../ports/store.js";
import { deployLogId, type Release } from "./release.js";

/**
 * How a push ends, told the same way by both deployers (podman and Kubernetes). The build a release
 * came from stays `deploying` until its release is live (`success`), failed (`failure`, phase `deploy`)
 * or was overtaken (`superseded`), so a build's status, its log's last line and `build logs -f`'s exit
 * code say what happened to the whole push, not just to the image.
 *
 * Releases made without a build of their own (rollback, env var restart) name a build that ended long
 * ago; only a build still `deploying` takes the outcome, so their stories are not rewritten.
 */
export class DeployOutcome {
  constructor(
    private readonly deps: {
      readonly store: BuildStore & ReleaseStore & RouteStore;
      readonly logs: BuildLogs;
    },
    private readonly release: Release,
  ) {}

  /**
   * Appends a line to the deploy's log (the build's, or the release's own for a rollback or restart:
   * deployLogId); a log that cannot be written must not fail the deploy.
   */
  readonly say = (line: string): Promise<void> =>
    this.deps.logs.append(deployLogId(this.release), line).catch(() => undefined);

  /**
   * What a failure leaves serving, decided before the rollout touches the route: a tool's first release
   * has nothing to fall back to, and saying "the previous release keeps serving" then misleads.
   */
  async fallback(): Promise<string> {
    const route = await this.deps.store.getRoute(this.release.tool);
    return route && route.release_id !== this.release.id
      ? "the previous release keeps serving"
      : "nothing was serving before";
  }

  /** The last log line of a push that went live, then the build's status. */
  async live(): Promise<void> {
    await this.say(`===> LIVE: release ${this.release.id} serves ${this.release.tool}`);
    await this.endBuild({ status: "success", reason: `live as release ${this.release.id}` });
  }

  /**
   * The failed release's last process output, then `===> DEPLOY FAILED: <reason>` as the log's last
   * line (what `build logs -f` ends on), then the release's and the build's status.
   */
  async failed(reason: string, output: readonly string[], extra: Partial<Release> = {}): Promise<void> {
    const { store } = this.deps;
    if (output.length > 0) await this.say("===> last output of the failed process:");
    for (const line of output) await this.say(`  | ${line}`);
    await this.say(`===> DEPLOY FAILED: ${reason}`);
    await store.updateRelease(this.release.id, {
      ...extra,
      status: "failed",
      reason,
      log_tail: [...output],
      finished_at: new Date().toISOString(),
    });
    await this.endBuild({
      status: "failure",
      phase: "deploy",
      reason: `deploy failed: ${reason}`,
      log_tail: output.length > 0 ? [...output] : undefined,
    });
  }

  /**
   * A release made after this one went live first. When that release runs this build's image (an env
   * var restart during the rollout), the build's push did go live.
   */
  async superseded(newer: Release): Promise<void> {
    await this.deps.store.updateRelease(this.release.id, {
      status: "superseded",
      reason: `release ${newer.id}, made after this one, went live first`,
      finished_at: new Date().toISOString(),
    });
    await this.say(`===> SUPERSEDED: release ${newer.id}, made after this one, is already live`);
    await this.endBuild(
      newer.build_id === this.release.build_id
        ? { status: "success", reason: `live as release ${newer.id}` }
        : { status: "superseded", reason: `release ${newer.id}, made after this one, went live first` },
    );
  }

  private async endBuild(patch: {
    status: "success" | "failure" | "superseded";
    reason: string;
    phase?: "deploy";
    log_tail?: string[] | undefined;
  }): Promise<void> {
    const build = await this.deps.store.getBuild(this.release.build_id);
    if (build?.status !== "deploying") return;
    await this.deps.store.updateBuild(build.id, { ...patch, finished_at: new Date().toISOString() });
  }
}

/**
 * Probe answers that mean no process accepted the connection: podman's forwarder refuses or drops it,
 * or accepts and closes without a byte. A web process listening elsewhere (port 8080, 127.0.0.1) looks
 * exactly like this from outside, and that is by far the usual cause.
 */
export function nothingListened(probeDetail: string): boolean {
  return /ECONNREFUSED|ECONNRESET|EPIPE|closed without an answer|socket hang up|not probed yet/.test(
    probeDetail,
  );
}

/** The words for a web process that never passed its health check. */
export function healthCheckFailure(input: {
  readonly who: string;
  readonly port: number;
  readonly timeoutS: number;
  readonly probeDetail: string;
}): string {
  const { who, port, timeoutS, probeDetail } = input;
  return nothingListened(probeDetail)
    ? `nothing listened on port ${port} within ${timeoutS} s: the ${who} must listen on $PORT (${port}) on 0.0.0.0`
    : `${who} did not pass its health check within ${timeoutS} s (last probe: ${probeDetail})`;
}
