import type { BuildRequest } from "../../ports/build-backend.js";

/** The objects Slipway applies at start, read from `pipelines/` (one YAML document per file). */
export const PIPELINE_NAME = "slipway-build";
export const BUILD_LABEL = "slipway.dev/build";
export const TOOL_LABEL = "slipway.dev/tool";
export const COMPONENT_LABEL = "slipway.dev/component";
/** The builder process that created the run (BuilderRegistry id): recovery removes only a dead one's runs. */
export const BUILDER_LABEL = "slipway.dev/builder";
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "slipway" } as const;

/** What a PipelineRun of a build is made from besides the build itself. */
export interface TektonBuildSettings {
  /** Namespace the PipelineRuns, caches and credentials live in. */
  readonly namespace: string;
  /** Registry host (and path) the image goes to: `<registry>/<repository>:<tag>`. */
  readonly registry: string;
  readonly buildImage: string;
  readonly runImage: string;
  readonly fetchImage: string;
  /** Secret (docker config.json under `config.json`) the export Task pushes with. */
  readonly pushSecret: string;
  /** The same limits as a local build's container. */
  readonly memoryMb: number;
  readonly cpus: number;
  readonly timeoutS: number;
  /** Size of each tool component's cache claim and of each of a run's two workspaces (source, layers). */
  readonly cacheSize: string;
  readonly workspaceSize: string;
  /** The build pods' user and group (the stack's). */
  readonly uid: number;
  readonly gid: number;
  /** This builder process's id, labelled on its runs; absent in tests that run no recovery. */
  readonly builder?: string | undefined;
  /** The package mirrors the build Task's steps fetch from; the public ones when absent. */
  readonly mirrors?: PackageMirrors | undefined;
}

/** SLIPWAY_NPM_REGISTRY, SLIPWAY_DEBIAN_MIRROR and SLIPWAY_PIP_INDEX_URL, as the build Task's params take them. */
export interface PackageMirrors {
  readonly npmRegistry?: string | undefined;
  readonly debianMirror?: string | undefined;
  readonly pipIndexUrl?: string | undefined;
}

/**
 * The params of `pipelines/pipeline.yaml` for one build: what a cluster's PipelineRun gets and what the
 * local executor runs the same Pipeline with.
 */
export function pipelineParams(
  request: BuildRequest,
  images: { readonly image: string; readonly build: string; readonly run: string; readonly fetch: string },
  mirrors: PackageMirrors = {},
): Record<string, string> {
  return {
    tool: request.tool,
    component: request.component,
    // The deploy credential goes in its own workspace, never in a param (params are in the run's spec).
    url: request.sourceUrl.replace(/\/\/[^@/]*@/, "//"),
    ref: request.ref,
    commit: request.commit,
    image: images.image,
    "no-cache": String(request.noCache),
    "build-image": images.build,
    "run-image": images.run,
    "fetch-image": images.fetch,
    "npm-registry": mirrors.npmRegistry ?? "",
    "debian-mirror": mirrors.debianMirror ?? "",
    "pip-index-url": mirrors.pipIndexUrl ?? "",
  };
}

/** `build-<id>`: a build id is lowercase base32, so it is a valid object name as it is. */
export function runName(buildId: string): string {
  return `build-${buildId.toLowerCase().replace(/[^a-z0-9-]/g, "-")}`.slice(0, 63);
}

/** One claim per tool component: its build cache survives runs, as the local cache dir does. */
export function cacheClaimName(tool: string, component: string): string {
  return `cache-${tool}-${component}`.toLowerCase().slice(0, 253);
}

export function credentialSecretName(buildId: string): string {
  return `${runName(buildId)}-source`;
}

export function cacheClaim(settings: TektonBuildSettings, tool: string, component: string) {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: {
      name: cacheClaimName(tool, component),
      namespace: settings.namespace,
      labels: { ...MANAGED_BY, [TOOL_LABEL]: tool, [COMPONENT_LABEL]: component },
    },
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: settings.cacheSize } },
    },
  };
}

/** The PipelineRun of one build: params, workspaces, limits and timeout from the build settings. */
export function pipelineRun(settings: TektonBuildSettings, request: BuildRequest, withCredential: boolean) {
  const labels = {
    ...MANAGED_BY,
    [TOOL_LABEL]: request.tool,
    [COMPONENT_LABEL]: request.component,
    [BUILD_LABEL]: request.buildId,
    ...(settings.builder ? { [BUILDER_LABEL]: settings.builder } : {}),
  };
  const params = pipelineParams(
    request,
    {
      image: `${settings.registry}/${request.repository}:${request.tag}`,
      build: settings.buildImage,
      run: settings.runImage,
      fetch: settings.fetchImage,
    },
    settings.mirrors,
  );
  return {
    apiVersion: "tekton.dev/v1",
    kind: "PipelineRun",
    metadata: { name: runName(request.buildId), namespace: settings.namespace, labels },
    spec: {
      pipelineRef: { name: PIPELINE_NAME },
      params: Object.entries(params).map(([name, value]) => ({ name, value })),
      timeouts: { pipeline: `${settings.timeoutS}s` },
      taskRunTemplate: {
        podTemplate: {
          securityContext: {
            runAsNonRoot: true,
            runAsUser: settings.uid,
            runAsGroup: settings.gid,
            fsGroup: settings.gid,
            seccompProfile: { type: "RuntimeDefault" },
          },
        },
      },
      taskRunSpecs: [
        {
          pipelineTaskName: "build",
          stepSpecs: [
            {
              name: "build",
              computeResources: {
                limits: { memory: `${settings.memoryMb}Mi`, cpu: String(settings.cpus) },
              },
            },
          ],
        },
      ],
      workspaces: [
        // A claim per run for each. The Tasks mount the checkout at /app and the layers at /layers, so
        // each workspace is a directory of its own: a subPath keeps a new volume's lost+found out of it.
        ...["source", "layers"].map((name) => ({
          name,
          subPath: name,
          volumeClaimTemplate: {
            spec: {
              accessModes: ["ReadWriteOnce"],
              resources: { requests: { storage: settings.workspaceSize } },
            },
          },
        })),
        // One claim per tool component, two directories of it: the build Task's cache (written by
        // buildpack code) and the export Task's layer cache. Each Task mounts only its own, so no
        // buildpack can put a layer where the export would take it as unchanged.
        ...(["cache", "layer-cache"] as const).map((name) => ({
          name,
          subPath: name === "cache" ? "build" : "export",
          persistentVolumeClaim: { claimName: cacheClaimName(request.tool, request.component) },
        })),
        ...(withCredential
          ? [{ name: "deploy-credential", secret: { secretName: credentialSecretName(request.buildId) } }]
          : []),
        { name: "push-credential", secret: { secretName: settings.pushSecret } },
      ],
    },
  };
}
