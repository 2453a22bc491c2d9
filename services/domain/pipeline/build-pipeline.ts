import type { BuildBackend, BuildPhase, BuiltImage, PreparedBuild } from "../../ports/build-backend.js";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { PipelineError, SlipwayError, TransientError, errorMessage } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import { newId } from "../../platform/ids.js";
import type { BuilderRegistry } from "../../ports/builders.js";
import type { BuildLogs } from "../../ports/logs.js";
import type { SourceFetcher } from "../../ports/source.js";
import type { BuildStore, ReleaseStore, ToolStore } from "../../ports/store.js";
import { TERMINAL_STATUSES, type Build, type Phase } from "../builds/build.js";
import { failureCause } from "../lifecycle/failure-cause.js";
import { throwIfAborted } from "./local-backend.js";
import type { Release } from "../releases/release.js";
import { defaultConfigFromProcfile, describeProcfileRoles, type ComponentsConfig } from "../config/index.js";
import { readAppConfig, samePolicy, toolPolicy, type AppConfig } from "./app-config.js";
import { decide } from "./deploy-policy.js";
import type { Enqueuer } from "../../ports/queue.js";
import type { BuildRecovery } from "./build-recovery.js";
import type { BuildTimingsSink } from "../../ports/build-timings.js";
import { PhaseClock } from "./phase-clock.js";

const TAIL_LINES = 30;

/**
 * One build, start to finish: fetch the exact commit, run the buildpacks, export and push the image,
 * then hand a release to the deployer. Every failure ends as a build status a maintainer can act on:
 * the phase, the buildpack and the last log lines.
 */
export class BuildPipeline {
  constructor(
    private readonly deps: {
      readonly store: ToolStore & BuildStore & ReleaseStore;
      readonly logs: BuildLogs;
      readonly queue: Enqueuer;
      readonly fetcher: SourceFetcher;
      /** Where detect, restore, build and export run (this machine's podman, or a cluster). */
      readonly backend: BuildBackend;
      /**
       * This builder process, recorded on the builds it runs, and what ends a build whose builder
       * died. Absent where one pipeline runs in-process (tests): no crash can leave an orphan there.
       */
      readonly builders?: BuilderRegistry | undefined;
      readonly recovery?: BuildRecovery | undefined;
      readonly workRoot: string;
      readonly logger: Logger;
      readonly timeoutS: number;
      readonly cancelPollMs?: number;
      /** Where each run's phase timings go when it ends (the metrics' phase histogram). */
      readonly timings?: BuildTimingsSink | undefined;
    },
  ) {}

  /** Builds this process is running: a second job for one of them (a re-delivery) ends at once. */
  private readonly running = new Set<string>();

  async run(buildId: string, job: { signal: AbortSignal; finalAttempt: boolean }): Promise<void> {
    // Checked and set before any await, so two jobs of one build in this process cannot both pass;
    // the builder's set of builds (BuilderRegistry) then has one owner per build here.
    if (this.running.has(buildId)) return;
    this.running.add(buildId);
    try {
      await this.runOnce(buildId, job);
    } finally {
      this.running.delete(buildId);
    }
  }

  private async runOnce(buildId: string, job: { signal: AbortSignal; finalAttempt: boolean }): Promise<void> {
    const { store, builders } = this.deps;
    let build = await store.getBuild(buildId);
    if (!build) throw new SlipwayError("not_found", `build ${buildId} vanished from the store`);
    if (TERMINAL_STATUSES.has(build.status)) return;
    if (build.status === "running") {
      // A job delivered again (BullMQ saw it stall) or a recovery job: the build either still runs
      // on a live builder, or its builder died with it and nobody else will ever end it.
      const { recovery } = this.deps;
      if (!recovery || !(await recovery.orphaned(build))) return;
      build = (await recovery.recover(build)) ?? (await store.getBuild(buildId)) ?? build;
      if (build.status !== "pending") return;
    }
    const log = this.deps.logger.child({ tool: build.tool, buildId, sha: build.commit });

    const controller = new AbortController();
    const onJobAbort = () => controller.abort(new SlipwayError("cancelled", "the builder is shutting down"));
    job.signal.addEventListener("abort", onJobAbort);
    const timer = setTimeout(
      () =>
        controller.abort(
          new PipelineError("build_failed", `build exceeded the ${this.deps.timeoutS} s limit`),
        ),
      this.deps.timeoutS * 1000,
    );
    // Set once this run marked the build running; from then on another builder may take it over if
    // this one looked dead (its heartbeat expired, say while Redis was away), and this run must stop
    // without writing anything: the record is the other builder's now.
    let mine = false;
    let takenOver: string | undefined;
    const watcher = setInterval(() => {
      void store.getBuild(buildId).then(
        (b) => {
          if (b && TERMINAL_STATUSES.has(b.status))
            controller.abort(new SlipwayError("cancelled", b.reason ?? b.status));
          else if (b && mine && builders && b.builder !== builders.id) {
            takenOver = b.builder ?? "a recovery";
            controller.abort(new SlipwayError("cancelled", `taken over by builder ${takenOver}`));
          }
        },
        () => undefined,
      );
    }, this.deps.cancelPollMs ?? 1000);

    const tail: string[] = [];
    let phase: Phase = "fetch";
    const clock = new PhaseClock(phase);
    let pending = Promise.resolve();
    const enter = (next: BuildPhase) => {
      phase = next;
      clock.enter(phase);
      void store.updateBuild(buildId, { phase }).catch(() => undefined);
    };
    const emit = (line: string) => {
      tail.push(line);
      if (tail.length > TAIL_LINES) tail.shift();
      // Appends are chained so lines stay in order without awaiting each one.
      pending = pending.then(() => this.deps.logs.append(buildId, line)).catch(() => undefined);
    };

    const workDir = path.join(this.deps.workRoot, buildId);
    let prepared: PreparedBuild | undefined;
    try {
      // Only a build still pending starts: a newer push may have superseded it a moment ago. The
      // builder notes the build first, so that a crash right after leaves it findable (BuildRecovery).
      await builders?.took(buildId);
      const started = await store.startBuild(buildId, {
        status: "running",
        phase,
        started_at: new Date().toISOString(),
        reason: build.restarts
          ? `building (re-run ${build.restarts} after its builder restarted)`
          : "building",
        builder: builders?.id,
      });
      if (!started) return;
      mine = true;
      await rm(workDir, { recursive: true, force: true });
      const appDir = path.join(workDir, "app");
      await mkdir(appDir, { recursive: true });
      // The backend may start its sandbox now: it and the fetch take about as long, and need not wait.
      prepared = this.deps.backend.prepare?.({
        buildId,
        tool: build.tool,
        component: build.component,
        appDir,
        workDir,
        noCache: build.no_cache ?? false,
      });

      emit(`===> FETCHING ${redactUrl(build.source_url)} ${build.ref} at ${build.commit}`);
      const source = await this.deps.fetcher.fetch(
        { url: build.source_url, ref: build.ref, commit: build.commit, tool: build.tool },
        appDir,
        controller.signal,
      );
      throwIfAborted(controller.signal);

      phase = "config";
      clock.enter(phase);
      await store.updateBuild(buildId, { phase });
      const appConfig = await readAppConfig(appDir);
      if (appConfig) {
        emit(
          `===> CONFIG ${appConfig.file}: components ${Object.keys(appConfig.config.components).join(", ")}`,
        );
      }
      const notDeployed = await this.applyDeployPolicy(build, appConfig, emit);
      if (notDeployed !== undefined) {
        emit(`===> NOT DEPLOYED: ${notDeployed}`);
        await pending;
        await store.updateBuild(buildId, {
          status: "cancelled",
          reason: `not deployed: ${notDeployed}`,
          finished_at: new Date().toISOString(),
        });
        // The commit may still deploy from a ref the policy allows (say a tag pushed later).
        await store.releaseCommit(build.tool, build.component, build.commit);
        log.info({ reason: notDeployed }, "build ended by the commit's deploy policy");
        return;
      }

      const exported = await this.deps.backend.build(
        {
          buildId,
          tool: build.tool,
          component: build.component,
          commit: build.commit,
          ref: build.ref,
          sourceUrl: build.source_url,
          appDir,
          workDir,
          sourceDateEpoch: source.commitTime,
          noCache: build.no_cache ?? false,
          repository: `tool-${build.tool}/${build.component}`,
          tag: build.commit,
        },
        { onLog: emit, onPhase: enter, signal: controller.signal },
      );
      throwIfAborted(controller.signal);
      emit(
        `Image ${exported.image}@${exported.digest}` +
          (exported.blobsUploaded === undefined ? "" : ` (${exported.blobsUploaded} blobs uploaded)`),
      );
      emit(`Timings: ${clock.summary()}`);

      const config = appConfig?.config ?? this.procfileConfig(exported.processes, emit);
      const release = await this.createRelease(build, exported.image, exported.digest, {
        config,
        processes: exported.processes.map((p) => p.type),
      });
      await pending;
      // Not ended yet: the deployer gives the build its outcome (releases/outcome.ts).
      await store.updateBuild(buildId, {
        status: "deploying",
        phase: "deploy",
        reason: `built; deploying as release ${release.id}`,
        image: exported.image,
        image_digest: exported.digest,
        release_id: release.id,
        config,
      });
      await this.deps.queue.enqueue("deploy", { build_id: buildId, release_id: release.id }, release.id);
      const phaseMs = clock.timings();
      this.deps.timings?.phasesTook(phaseMs);
      log.info({ digest: exported.digest, releaseId: release.id, phaseMs }, "build done; deploying");
    } catch (error) {
      const reason = controller.signal.reason as unknown;
      const cause = controller.signal.aborted && reason instanceof SlipwayError ? reason : error;
      await pending;
      // The step may have failed before the watcher saw it: a re-run's sandbox replaces this one's.
      if (takenOver === undefined && mine && builders) {
        const now = await store.getBuild(buildId).catch(() => undefined);
        if (now && !TERMINAL_STATUSES.has(now.status) && now.builder !== builders.id)
          takenOver = now.builder ?? "a recovery";
      }
      if (takenOver !== undefined) {
        log.warn({ phase, takenOver }, "build taken over by another builder; this run stopped");
        return;
      }
      await this.fail(build, cause, phase, tail, job.finalAttempt, emit);
      await pending;
      if (cause instanceof TransientError && !job.finalAttempt) throw cause;
      const phaseMs = clock.timings();
      this.deps.timings?.phasesTook(phaseMs);
      log.warn({ phase, err: cause, phaseMs }, "build did not succeed");
    } finally {
      clearTimeout(timer);
      clearInterval(watcher);
      job.signal.removeEventListener("abort", onJobAbort);
      // Not for a run taken over: its sandbox has the build's name, which the run that took it now uses.
      if (takenOver === undefined)
        await prepared
          ?.release()
          .catch((error: unknown) =>
            log.warn({ err: error }, "what the build backend started ahead did not go"),
          );
      await pending;
      // A run taken over leaves the work dir to the run that took it (a re-run starts from a clean one).
      if (takenOver === undefined) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
      await builders?.finished(buildId).catch(() => undefined);
    }
  }

  private async fail(
    build: Build,
    error: unknown,
    phase: Phase,
    tail: string[],
    finalAttempt: boolean,
    emit: (line: string) => void,
  ): Promise<void> {
    const { store } = this.deps;
    const current = await store.getBuild(build.id);
    if (error instanceof SlipwayError && error.code === "cancelled") {
      if (current && !TERMINAL_STATUSES.has(current.status)) {
        await store.updateBuild(build.id, {
          status: "cancelled",
          reason: error.message,
          finished_at: new Date().toISOString(),
        });
      }
      emit(`===> CANCELLED: ${error.message}`);
      return;
    }
    if (current && TERMINAL_STATUSES.has(current.status)) {
      // Ended meanwhile (`build cancel` removes the sandbox, so the running step fails first): the
      // status already says why; a failure must not overwrite it.
      emit(`===> ${current.status.toUpperCase()}: ${current.reason ?? current.status}`);
      return;
    }
    if (error instanceof TransientError && !finalAttempt) {
      emit(`===> RETRYING after a temporary failure: ${error.message}`);
      await store.updateBuild(build.id, { status: "pending", reason: `retrying: ${error.message}` });
      return;
    }
    const details = error instanceof SlipwayError ? (error.details ?? {}) : {};
    const failedPhase = (typeof details.phase === "string" ? details.phase : phase) as Phase;
    const buildpack = typeof details.buildpack === "string" ? details.buildpack : undefined;
    const logTail = Array.isArray(details.log_tail) ? (details.log_tail as string[]) : [...tail];
    const base = error instanceof SlipwayError ? error.message : `internal error: ${errorMessage(error)}`;
    // The failing command's own words usually say what to fix ("Procfile line 3: …"); put them up front,
    // unless the lifecycle's reason already carries them.
    const cause = failureCause(logTail.filter((l) => !l.startsWith("===>")));
    const said = cause !== undefined && !base.includes(cause.replace(/…$/, "")) ? cause : undefined;
    // A limit hit is the whole story; the buildpack's last line then is whatever it was doing.
    const message = buildpack && said && details.limit === undefined ? `${base}: ${said}` : base;
    emit(`===> FAILED in ${failedPhase}${buildpack ? ` (${buildpack})` : ""}: ${message}`);
    await store.updateBuild(build.id, {
      status: "failure",
      phase: failedPhase,
      buildpack,
      reason: `${failedPhase} failed${buildpack ? ` in ${buildpack}` : ""}: ${message}`,
      log_tail: logTail.slice(-TAIL_LINES),
      finished_at: new Date().toISOString(),
    });
  }

  /**
   * The commit's deploy policy decides, after the fetch, for pushes that were let through by the policy
   * the tool had stored (which this build's config may have just changed). The policy read is stored on
   * the tool so the next webhook answers with it before fetching anything. Returns why the push does not
   * deploy, or undefined when it does. Explicit requests (API build start, redeploy hook) always deploy.
   */
  private async applyDeployPolicy(
    build: Build,
    appConfig: AppConfig | undefined,
    emit: (line: string) => void,
  ): Promise<string | undefined> {
    const tool = await this.deps.store.getTool(build.tool);
    if (!tool) return undefined;
    let policy = tool.deploy;
    if (appConfig) {
      policy = toolPolicy(appConfig.config.deploy, appConfig.file);
    } else if (tool.deploy.from !== undefined) {
      // The config file that set the policy is gone: back to the default (the default branch deploys).
      policy = { branches: [], tags: [] };
    }
    if (!samePolicy(policy, tool.deploy) || policy.from !== tool.deploy.from) {
      await this.deps.store.updateTool(tool.name, { deploy: policy });
      emit(
        `===> DEPLOY POLICY${policy.from ? ` from ${policy.from}` : " (default)"}: branches ${
          policy.no_branches
            ? "none"
            : policy.branches.length
              ? policy.branches.join(", ")
              : "the default branch"
        }; tags ${policy.tags.length ? policy.tags.join(", ") : "none"}`,
      );
    }
    if (build.trigger.kind === "api" || build.trigger.kind === "redeploy") return undefined;
    const decision = decide(policy, build.ref, tool.source?.default_branch);
    return decision.deploy ? undefined : decision.reason;
  }

  /** No config file: the Procfile's process types make the components (see config/procfile-default.ts). */
  private procfileConfig(
    processes: BuiltImage["processes"],
    emit: (line: string) => void,
  ): ComponentsConfig | undefined {
    const types = processes.map((p) => p.type);
    try {
      const config = defaultConfigFromProcfile(types);
      // Only a Procfile's types are worth describing: without one the buildpacks' `web` is all there is.
      if (processes.some((p) => p.buildpackId === "slipway/procfile")) {
        for (const line of describeProcfileRoles(types)) emit(line);
      }
      return config;
    } catch (error) {
      emit(`warning: ${errorMessage(error)}; only the web process runs`);
      return undefined;
    }
  }

  private async createRelease(
    build: Build,
    image: string,
    digest: string,
    extra: { config: ComponentsConfig | undefined; processes: readonly string[] },
  ): Promise<Release> {
    const release: Release = {
      ...extra,
      id: newId(),
      tool: build.tool,
      component: build.component,
      build_id: build.id,
      commit: build.commit,
      image,
      image_digest: digest,
      trigger: build.trigger,
      status: "deploying",
      created_at: new Date().toISOString(),
    };
    await this.deps.store.createRelease(release);
    return release;
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//");
}
