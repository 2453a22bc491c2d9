import type { LifecycleResult, ProcessType } from "../../domain/lifecycle/types.js";
import type { LayerBlob } from "./layer.js";

export const MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json";
export const CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json";

export const LAYERS_DIR = "/layers";
export const APP_DIR = "/workspace";
export const CNB_DIR = "/cnb";
export const LAUNCHER = "/cnb/lifecycle/launcher";

/** Used when the run image says nothing else: Debian's default PATH. */
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** One layer of the image, in order, with the history line and metadata that describe it. */
export interface ImageLayer {
  readonly blob: LayerBlob;
  readonly createdBy: string;
}

export interface ImageConfigInput {
  readonly result: LifecycleResult;
  readonly layers: {
    readonly base: LayerBlob;
    /** Keyed like `result.layers`, same order. */
    readonly launch: readonly LayerBlob[];
    readonly cnb: LayerBlob;
    readonly app: LayerBlob;
  };
  readonly uid: number;
  readonly gid: number;
  readonly sourceDateEpoch: number;
  readonly architecture: string;
  /** The process the image starts by default, or undefined for the bare launcher. */
  readonly process: ProcessType | undefined;
  /** Environment the run image needs, before the CNB variables are added. */
  readonly runEnv: Readonly<Record<string, string>>;
  readonly runImage: { readonly image: string; readonly stackId: string };
  readonly source: { readonly commit: string; readonly repository: string };
}

/**
 * The OCI image config the CNB exporter would write (platform spec, exporter outputs): entrypoint
 * `/cnb/process/<type>`, PATH led by `/cnb/process`, the `io.buildpacks.*` labels. Only the inputs
 * decide it; nothing here reads a clock or the machine.
 */
export function imageConfig(input: ImageConfigInput): { config: object; history: ImageLayer[] } {
  const { result, layers } = input;
  const created = new Date(input.sourceDateEpoch * 1000).toISOString().replace(/\.000Z$/, "Z");
  const source = { commit: input.source.commit, repository: withoutCredentials(input.source.repository) };

  const ordered: ImageLayer[] = [
    { blob: layers.base, createdBy: `Slipway run image (stack ${input.runImage.stackId})` },
    ...result.layers.map((l, i) => ({
      blob: launchAt(layers.launch, i),
      createdBy: `Layer: '${l.name}', Created by buildpack: ${l.buildpackId}@${versionOf(result, l.buildpackId)}`,
    })),
    { blob: layers.cnb, createdBy: "Buildpacks Launcher and process types" },
    { blob: layers.app, createdBy: "Application Layer" },
  ];

  const buildMetadata = {
    buildpacks: result.group.map((g) => ({
      api: g.api,
      homepage: g.homepage ?? "",
      id: g.id,
      version: g.version,
    })),
    processes: result.processes.map((p) => ({
      args: p.args,
      buildpackID: p.buildpackId,
      command: p.command,
      default: p.default,
      type: p.type,
      "working-dir": p.workingDir ?? APP_DIR,
    })),
  };
  const lifecycleMetadata = {
    app: [{ sha: layers.app.diffId }],
    buildpacks: result.group.map((g) => ({
      key: g.id,
      version: g.version,
      layers: Object.fromEntries(
        result.layers
          .map((l, i) => [l, i] as const)
          .filter(([l]) => l.buildpackId === g.id)
          .map(([l, i]) => [
            l.name,
            { build: false, cache: false, data: {}, launch: true, sha: launchAt(layers.launch, i).diffId },
          ]),
      ),
    })),
    launcher: { sha: layers.cnb.diffId },
    runImage: { image: input.runImage.image, reference: layers.base.digest, topLayer: layers.base.diffId },
  };
  const projectMetadata = {
    source: { metadata: { repository: source.repository }, type: "git", version: { commit: source.commit } },
  };
  const labels: Record<string, string> = {
    // Buildpack labels first, so they can never overwrite the ones below.
    ...Object.fromEntries(result.labels.map((l) => [l.key, l.value])),
    "io.buildpacks.build.metadata": canonicalJson(buildMetadata),
    "io.buildpacks.lifecycle.metadata": canonicalJson(lifecycleMetadata),
    "io.buildpacks.project.metadata": canonicalJson(projectMetadata),
    "org.opencontainers.image.revision": source.commit,
    "org.opencontainers.image.source": source.repository,
  };

  const env = { ...input.runEnv };
  env.PATH = `/cnb/process:${env.PATH ?? DEFAULT_PATH}`;
  env.CNB_LAYERS_DIR = LAYERS_DIR;
  env.CNB_APP_DIR = APP_DIR;
  const config = {
    architecture: input.architecture,
    os: "linux",
    created,
    config: {
      User: `${input.uid}:${input.gid}`,
      Env: Object.keys(env)
        .sort()
        .map((k) => `${k}=${env[k]}`),
      Entrypoint: [input.process ? `/cnb/process/${input.process.type}` : LAUNCHER],
      WorkingDir: APP_DIR,
      Labels: labels,
    },
    rootfs: { type: "layers", diff_ids: ordered.map((l) => l.blob.diffId) },
    history: ordered.map((l) => ({ created, created_by: l.createdBy })),
  };
  return { config, history: ordered };
}

export function imageManifest(
  config: { digest: string; size: number },
  layers: readonly LayerBlob[],
): object {
  return {
    schemaVersion: 2,
    mediaType: MANIFEST_MEDIA_TYPE,
    config: { mediaType: CONFIG_MEDIA_TYPE, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
}

/**
 * JSON with object keys sorted at every level and no whitespace: the same value always serialises
 * to the same bytes, so the same build always has the same config and manifest digests.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(obj)
        .sort()
        .filter((k) => obj[k] !== undefined)
        .map((k) => [k, sortKeys(obj[k])]),
    );
  }
  return value;
}

/** A clone URL may carry a deploy token; it must never end up in an image label. */
export function withoutCredentials(repository: string): string {
  try {
    const url = new URL(repository);
    url.username = "";
    url.password = "";
    return url.href;
  } catch {
    // Not a URL (an scp-style `git@host:path`): such a form carries no password.
    return repository;
  }
}

function versionOf(result: LifecycleResult, buildpackId: string): string {
  return result.group.find((g) => g.id === buildpackId)?.version ?? "unknown";
}

function launchAt(launch: readonly LayerBlob[], i: number): LayerBlob {
  const blob = launch[i];
  if (!blob) throw new Error(`launch layer ${i} missing`);
  return blob;
}
