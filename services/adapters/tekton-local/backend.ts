import { chmod, chown, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { BuildBackend, BuildPhase, BuildRequest, BuiltImage } from "../../ports/build-backend.js";
import type { BuildSandbox } from "../../ports/sandbox.js";
import { requestedSuite } from "../../domain/lifecycle/python-version.js";
import type { StackSuite } from "../../domain/lifecycle/types.js";
import { LIFECYCLE_MOUNT } from "../stack/lifecycle-dir.js";
import { mapSuccess, stepPhase } from "../tekton/status.js";
import { type PackageMirrors, pipelineParams } from "../tekton/pipeline-run.js";
import type { Definitions } from "./definitions.js";
import { LocalTektonExecutor } from "./executor.js";

const PIPELINE = "slipway-build";
const PHASES: readonly BuildPhase[] = ["detect", "restore", "build", "export"];

export interface PipelinesBackendOptions {
  readonly definitions: Definitions;
  /** The stack suites a Python request may choose among, the default first (its images ready at start). */
  readonly suites: readonly StackSuite[];
  /**
   * A suite's stack images: the build image (the build and export steps' image, and locally the fetch
   * image: git, sh) and the run image in the registry (`host/repository:tag`) the export step lays the
   * app on. Another suite than the default is made on its first use.
   */
  readonly images: (suite: string, onLog: (line: string) => void) => Promise<{ build: string; run: string }>;
  /** Registry host images go to, and the push account the export step (only) gets as config.json. */
  readonly registry: { readonly host: string; readonly username: string; readonly password: string };
  /** The build user of the stack (the pod template's runAsUser/runAsGroup). */
  readonly user: { readonly uid: number; readonly gid: number };
  /** SLIPWAY_BUILD_MEMORY_MB / SLIPWAY_BUILD_CPUS / SLIPWAY_BUILD_TIMEOUT_S, as for a PipelineRun. */
  readonly memoryMb: number;
  readonly cpus: number;
  readonly timeoutS: number;
  /** A tool component's build cache directory (the cluster's cache claim). */
  readonly cacheDir: (tool: string, component: string) => string;
  /**
   * The export Task's layer cache for an image repository (the cluster's second directory of the cache
   * claim): mounted into the export step only.
   */
  readonly layerCacheDir: (repository: string) => string;
  /** The sandbox of a pipeline task's steps for this tool: each task on the network it needs. */
  readonly sandbox: (tool: string, pipelineTask: string) => Promise<BuildSandbox>;
  /** slipway-lifecycle's /cnb, which a cluster's build image carries as a layer, and its environment. */
  readonly imageOverlay: LocalTektonExecutorOverlay;
  /** The package mirrors, passed as the Pipeline's params as the Tekton backend passes them. */
  readonly mirrors?: PackageMirrors | undefined;
  /** The tool's deploy credential for its repository, when it has one. */
  readonly credential: (request: BuildRequest) => Promise<{ username: string; password: string } | undefined>;
}

type LocalTektonExecutorOverlay = NonNullable<
  ConstructorParameters<typeof LocalTektonExecutor>[1]["imageOverlay"]
>;

/**
 * Builds by running `pipelines/pipeline.yaml` on this machine (`SLIPWAY_BUILD_BACKEND=pipelines`):
 * the same Tasks a cluster runs, each TaskRun a podman container and each step a `podman exec` in it
 * (LocalTektonExecutor). The PipelineRun's
 * params and workspaces are what the Tekton backend gives a cluster's run; credentials are files in the
 * build's work dir, there for the run only, and each mounted in the one Task that declares it.
 */
export function pipelinesBackend(options: PipelinesBackendOptions): BuildBackend {
  return {
    build: async (request, { onLog, onPhase, signal }): Promise<BuiltImage> => {
      // A Python request picks the stack, as in the podman backend's lifecycle; here before the run, as the
      // build image is the run's param. A request no stack satisfies fails in detect, saying so.
      const requested = await requestedSuite(request.appDir, {}, options.suites, onLog);
      const suite = requested?.suite ?? options.suites[0]!;
      if (requested && suite !== options.suites[0])
        onLog(
          `${requested.source} asks for Python ${suite.python}: building on the Debian ${suite.suite} stack`,
        );
      const images = await options.images(suite.suite, onLog);
      const dir = path.join(request.workDir, "pipeline");
      const source = path.join(dir, "source");
      const layers = path.join(dir, "layers");
      const push = path.join(dir, "push-credential");
      const deploy = path.join(dir, "deploy-credential");
      const cache = options.cacheDir(request.tool, request.component);
      const layerCache = options.layerCacheDir(request.repository);
      for (const d of [source, layers, push, cache, layerCache]) await mkdir(d, { recursive: true });
      const sandboxes = new Map<string, BuildSandbox>();
      for (const task of ["fetch", "build", "export"])
        sandboxes.set(task, await options.sandbox(request.tool, task));
      let entered = -1;
      try {
        const auth = Buffer.from(`${options.registry.username}:${options.registry.password}`).toString(
          "base64",
        );
        await secretFile(
          push,
          "config.json",
          JSON.stringify({ auths: { [options.registry.host]: { auth } } }),
          options.user,
        );
        const credential = await options.credential(request);
        if (credential) {
          await mkdir(deploy, { recursive: true });
          await secretFile(deploy, "username", credential.username, options.user);
          await secretFile(deploy, "password", credential.password, options.user);
        }
        const executor = new LocalTektonExecutor(options.definitions, {
          sandbox: (task) => sandboxes.get(task)!,
          user: options.user,
          defaults: { memoryMb: options.memoryMb, cpus: options.cpus },
          workDir: path.join(dir, "tekton"),
          namePrefix: `slipway-build-${request.buildId}`,
          buildId: request.buildId,
          imageOverlay: options.imageOverlay,
        });
        const outcome = await executor.runPipeline(
          PIPELINE,
          {
            params: pipelineParams(
              request,
              {
                image: `${options.registry.host}/${request.repository}:${request.tag}`,
                build: images.build,
                run: images.run,
                // One machine's fetch image is its build image: Debian's git and sh are in it.
                fetch: images.build,
              },
              options.mirrors,
            ),
            workspaces: {
              source,
              layers,
              cache,
              "layer-cache": layerCache,
              ...(credential ? { "deploy-credential": deploy } : {}),
              "push-credential": push,
            },
            timeoutMs: options.timeoutS * 1000,
            // As the Tekton backend's taskRunSpecs: the build step gets the build settings' limits.
            stepLimits: { "build/build": { memoryMb: options.memoryMb, cpus: options.cpus } },
          },
          {
            onLog,
            signal,
            onStep: (task, step) => {
              // Phases only move forward, as the cluster backend reports them.
              const phase = stepPhase(task, step);
              const at = phase ? PHASES.indexOf(phase) : -1;
              if (at <= entered) return;
              entered = at;
              onPhase(phase!);
            },
          },
        );
        return mapSuccess(outcome.pipelineRun, outcome.taskRuns);
      } finally {
        await rm(push, { recursive: true, force: true });
        await rm(deploy, { recursive: true, force: true });
      }
    },
  };
}

/**
 * slipway-lifecycle's `/cnb` (prepareLifecycleDir) as this machine gives it to the steps: mounted where a
 * cluster's build image has it as a layer, with that image's PATH. The package mirrors are the Pipeline's
 * params, as on a cluster.
 */
export function lifecycleOverlay(lifecycleDir: string): LocalTektonExecutorOverlay {
  return {
    mounts: [{ host: lifecycleDir, container: LIFECYCLE_MOUNT }],
    env: { PATH: `${LIFECYCLE_MOUNT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
  };
}

/** A credential file readable by the build user only (a Secret volume's file, on this machine). */
async function secretFile(
  dir: string,
  name: string,
  content: string,
  user: { readonly uid: number; readonly gid: number },
): Promise<void> {
  const file = path.join(dir, name);
  await writeFile(file, content, { mode: 0o600 });
  await chmod(file, 0o600);
  if (process.getuid?.() === 0) await chown(file, user.uid, user.gid);
}
