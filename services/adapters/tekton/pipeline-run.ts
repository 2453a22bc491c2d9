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
  const param = (name: string, value: string) => ({ name, value });
  return {
    apiVersion: "tekton.dev/v1",
    kind: "PipelineRun",
    metadata: { name: runName(request.buildId), namespace: settings.namespace, labels },
    spec: {
      pipelineRef: { name: PIPELINE_NAME },
      params: [
        param("tool", request.tool),
        param("component", request.component),
        param("url", request.sourceUrl.replace(/\/\/[^@/]*@/, "//")),
        param("ref", request.ref),
        param("commit", request.commit),
        param("image", `${settings.registry}/${request.repository}:${request.tag}`),
        param("no-cache", String(request.noCache)),
        param("build-image", settings.buildImage),
        param("run-image", settings.runImage),
        param("fetch-image", settings.fetchImage),
      ],
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
        {
          name: "cache",
          persistentVolumeClaim: { claimName: cacheClaimName(request.tool, request.component) },
        },
        ...(withCredential
          ? [{ name: "deploy-credential", secret: { secretName: credentialSecretName(request.buildId) } }]
          : []),
        { name: "push-credential", secret: { secretName: settings.pushSecret } },
      ],
    },
  };
}
