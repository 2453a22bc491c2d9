import { createHash } from "node:crypto";
import { lstat, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { LifecycleResult, Stack } from "../../domain/lifecycle/types.js";
import { SlipwayError } from "../../platform/errors.js";
import type { Logger } from "../../platform/logger.js";
import type { ImageRegistry } from "../../ports/registry.js";
import {
  APP_DIR,
  CNB_DIR,
  CONFIG_MEDIA_TYPE,
  MANIFEST_MEDIA_TYPE,
  canonicalJson,
  imageConfig,
  imageManifest,
} from "./image.js";
import { LayerCache } from "./layer-cache.js";
import { NORMALIZED_EPOCH, writeLayer, type LayerBlob, type LayerOptions } from "./layer.js";
import { runImageLayer } from "./run-layer.js";

/**
 * A registry that can also link a blob from another repository without re-sending it. Optional, so
 * any {@link ImageRegistry} works; without it the run image layer is uploaded once per repository.
 */
export type ExportRegistry = ImageRegistry & {
  mountBlob?(repository: string, digest: string, from: string): Promise<boolean>;
};

export interface ExportRequest {
  readonly result: LifecycleResult;
  readonly stack: Stack;
  /** The commit's time in seconds (SOURCE_DATE_EPOCH): the image's `created` and the app files' mtime. */
  readonly sourceDateEpoch: number;
  /** `tool-<tool>/<component>` */
  readonly repository: string;
  /** The commit sha. */
  readonly tag: string;
  readonly source: { readonly commit: string; readonly repository: string };
  /** Scratch space; everything written there is removed before returning. */
  readonly workDir: string;
  /** CNB_PROCESS_TYPE: the entrypoint's process; must exist. Default: the buildpacks' default process. */
  readonly processType?: string | undefined;
  /** Environment the run image needs (PATH is prefixed with `/cnb/process`). */
  readonly runEnv?: Readonly<Record<string, string>> | undefined;
  /** Shared repository holding each stack's base layer, mounted into tool repositories. */
  readonly baseRepository?: string | undefined;
  /**
   * The run image's layer as `baseRepository` already holds it (readRunImageLayer): mounted, never
   * uploaded. Without it the layer is made from `stack.runRootfs` (runImageLayer).
   */
  readonly baseLayer?: LayerBlob | undefined;
  /**
   * Per tool component, kept between builds: launch and launcher layers whose files did not change
   * are reused from here instead of being written again. Without it every layer is written each time.
   */
  readonly layerCacheDir?: string | undefined;
  /**
   * One per installation, beside the component caches (same file system): compressed layers by
   * diff_id, so a component's first build reuses what another component compressed (`LayerCache`).
   */
  readonly sharedLayerDir?: string | undefined;
  readonly logger?: Logger | undefined;
}

export interface ExportedLayer {
  readonly role: "run-image" | "launch" | "launcher" | "app";
  readonly name: string;
  readonly diffId: string;
  readonly digest: string;
  readonly size: number;
  readonly uploaded: boolean;
}

export interface ExportResult {
  /** `<host>/<repository>:<tag>` */
  readonly image: string;
  /** The manifest digest; deploys refer to `<host>/<repository>@<digest>`. */
  readonly digest: string;
  /** Blobs (layers and config) whose bytes were sent; 0 on a rebuild of unchanged inputs. */
  readonly blobsUploaded: number;
  readonly bytesUploaded: number;
  /** Blobs linked from the base repository instead of being sent. */
  readonly blobsMounted: number;
  /** Layers taken unchanged from the layer cache (`layerCacheDir`) instead of being written. */
  readonly layersFromCache: number;
  readonly layers: readonly ExportedLayer[];
}

const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const REPOSITORY = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;

/**
 * Turns a finished build into an OCI image in the registry, as the CNB exporter does: the run image's
 * rootfs, one layer per launch layer, `/cnb`, then the app at `/workspace` (with `/app` linking to it). Every layer is written
 * deterministically, so the same inputs give the same manifest digest; blobs the repository already
 * has are not sent again, and the run image layer is mounted from `baseRepository`.
 */
export async function exportImage(registry: ExportRegistry, request: ExportRequest): Promise<ExportResult> {
  const { result, stack } = request;
  validate(request);
  const entry = chooseProcess(result, request.processType);
  if (entry) await requireProcessScript(result.cnbDir, entry.type);
  const started = Date.now();

  await mkdir(request.workDir, { recursive: true });
  const work = await mkdtemp(path.join(request.workDir, "export-"));
  try {
    const owner = { uid: stack.uid, gid: stack.gid };
    // Launch and launcher layers keep the fixed CNB time so they stay identical from one commit to the
    // next and are not uploaded again; only the app layer carries the commit's time (servers derive
    // Last-Modified and ETag from it, which must change when the files do).
    const cache = request.layerCacheDir
      ? LayerCache.create(request.layerCacheDir, { shared: request.sharedLayerDir })
      : undefined;
    const stable = (hostDir: string, imagePath: string, file: string, options: LayerOptions) =>
      cache
        ? cache.layer(hostDir, imagePath, options)
        : writeLayer(hostDir, imagePath, path.join(work, file), options);
    const baseRepository = request.baseRepository ?? "slipway/run";
    const counts = { uploaded: 0, bytes: 0, mounted: 0 };
    const sent = new Set<string>();
    const pushes = new Map<string, Promise<void>>();
    // Once per digest: two layers of equal content are one blob.
    const pushOne = (blob: LayerBlob): Promise<void> => {
      let pending = pushes.get(blob.digest);
      if (!pending) {
        pending = registry.pushBlob(request.repository, blob, blob.path).then((uploaded) => {
          if (!uploaded) return;
          counts.uploaded++;
          counts.bytes += blob.size;
          sent.add(blob.digest);
        });
        pushes.set(blob.digest, pending);
      }
      return pending;
    };
    const writes = [
      request.baseLayer ? Promise.resolve(request.baseLayer) : runImageLayer(stack),
      stable(result.cnbDir, CNB_DIR, "cnb.tar.gz", { uid: 0, gid: 0, epoch: NORMALIZED_EPOCH }),
      writeLayer(result.appDir, APP_DIR, path.join(work, "app.tar.gz"), {
        ...owner,
        epoch: request.sourceDateEpoch,
        // Heroku and Dokku apps (and their release phases) assume the app lives at /app.
        rootLinks: [{ name: "app", target: APP_DIR }],
      }),
      ...result.layers.map((l, i) =>
        stable(l.hostDir, l.imagePath, `launch-${i}.tar.gz`, { ...owner, epoch: NORMALIZED_EPOCH }),
      ),
    ] as const;
    // Each layer is sent as soon as it is written: the small ones and the base layer's mount go while
    // the big one is still being compressed.
    const uploads = settleAll(
      writes.map((w, i) =>
        w.then((blob) =>
          i === 0
            ? pushBase(registry, request.repository, baseRepository, blob, counts, sent)
            : pushOne(blob),
        ),
      ),
    );
    let written: readonly LayerBlob[];
    let writtenAt = started;
    try {
      written = await settleAll(writes);
      writtenAt = Date.now();
    } finally {
      // Also when a write failed: no upload may still read the scratch directory once it is removed.
      await uploads.catch(() => undefined);
    }
    await uploads;
    const [base, cnb, app, ...launch] = written as [LayerBlob, LayerBlob, LayerBlob, ...LayerBlob[]];

    const { config, history } = imageConfig({
      result,
      layers: { base, launch, cnb, app },
      uid: stack.uid,
      gid: stack.gid,
      sourceDateEpoch: request.sourceDateEpoch,
      architecture: ociArchitecture(),
      process: entry,
      runEnv: request.runEnv ?? {},
      runImage: { image: baseRepository, stackId: stack.id },
      source: request.source,
    });
    const configBytes = Buffer.from(canonicalJson(config));
    const configBlob: LayerBlob = {
      diffId: "",
      digest: sha256(configBytes),
      size: configBytes.length,
      mediaType: CONFIG_MEDIA_TYPE,
      path: path.join(work, "config.json"),
    };
    await writeFile(configBlob.path, configBytes);
    // Every layer of the image was sent above; a repeat here is a no-op, kept so the manifest can never
    // name a blob that was not.
    await Promise.all([...history.slice(1).map((l) => pushOne(l.blob)), pushOne(configBlob)]);

    // The manifest goes last: a registry refuses one whose blobs it does not hold yet.
    const manifest = Buffer.from(
      canonicalJson(
        imageManifest(
          configBlob,
          history.map((l) => l.blob),
        ),
      ),
    );
    const digest = await registry.putManifest(request.repository, request.tag, manifest, MANIFEST_MEDIA_TYPE);
    await cache?.prune();

    const roles: ExportedLayer["role"][] = [
      "run-image",
      ...launch.map(() => "launch" as const),
      "launcher",
      "app",
    ];
    const names = [stack.id, ...result.layers.map((l) => `${l.buildpackId}:${l.name}`), "cnb", "app"];
    const layers = history.map((l, i) => ({
      role: roles[i] ?? "launch",
      name: names[i] ?? "",
      diffId: l.blob.diffId,
      digest: l.blob.digest,
      size: l.blob.size,
      uploaded: sent.has(l.blob.digest),
    }));
    request.logger?.info(
      {
        repository: request.repository,
        tag: request.tag,
        digest,
        blobsUploaded: counts.uploaded,
        bytesUploaded: counts.bytes,
        blobsMounted: counts.mounted,
        layersFromCache: cache?.reused ?? 0,
        // Uploads overlap the writing: pushMs is what they added after the last layer was written.
        layersMs: writtenAt - started,
        pushMs: Date.now() - writtenAt,
      },
      "image exported",
    );
    return {
      image: `${registry.host}/${request.repository}:${request.tag}`,
      digest,
      blobsUploaded: counts.uploaded,
      bytesUploaded: counts.bytes,
      blobsMounted: counts.mounted,
      layersFromCache: cache?.reused ?? 0,
      layers,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The base layer is the same for every tool on a stack: it is uploaded once to the shared repository
 * and mounted from there, so a tool's first build sends only its own layers.
 */
async function pushBase(
  registry: ExportRegistry,
  repository: string,
  baseRepository: string,
  base: LayerBlob,
  counts: { uploaded: number; bytes: number; mounted: number },
  sent: Set<string>,
): Promise<void> {
  if (await registry.hasBlob(repository, base.digest)) return;
  if (registry.mountBlob) {
    if (await registry.mountBlob(repository, base.digest, baseRepository)) {
      counts.mounted++;
      return;
    }
    // A layer read from the registry (readRunImageLayer) has no bytes here to send instead.
    if (base.path === "")
      throw new SlipwayError(
        "export_failed",
        `the run image's layer could not be mounted from ${baseRepository} into ${repository}`,
      );
    if (await registry.pushBlob(baseRepository, base, base.path)) {
      counts.uploaded++;
      counts.bytes += base.size;
      sent.add(base.digest);
    }
    if (await registry.mountBlob(repository, base.digest, baseRepository)) {
      counts.mounted++;
      return;
    }
  }
  if (await registry.pushBlob(repository, base, base.path)) {
    counts.uploaded++;
    counts.bytes += base.size;
    sent.add(base.digest);
  }
}

function chooseProcess(result: LifecycleResult, requested: string | undefined) {
  if (requested !== undefined) {
    const found = result.processes.find((p) => p.type === requested);
    if (!found) {
      const known = result.processes.map((p) => p.type).join(", ") || "none";
      throw new SlipwayError("export_failed", `process type ${requested} is not defined (defined: ${known})`);
    }
    return found;
  }
  return result.processes.find((p) => p.default);
}

async function requireProcessScript(cnbDir: string, type: string): Promise<void> {
  try {
    await lstat(path.join(cnbDir, "process", type));
  } catch (e) {
    throw new SlipwayError(
      "export_failed",
      `the launcher has no /cnb/process/${type}; the image could not start`,
      {
        cause: e,
      },
    );
  }
}

function validate(request: ExportRequest): void {
  if (!TAG.test(request.tag))
    throw new SlipwayError("invalid_name", `image tag ${JSON.stringify(request.tag)} is invalid`);
  if (!REPOSITORY.test(request.repository)) {
    throw new SlipwayError(
      "invalid_name",
      `image repository ${JSON.stringify(request.repository)} is invalid`,
    );
  }
  if (!Number.isInteger(request.sourceDateEpoch) || request.sourceDateEpoch < 0) {
    throw new SlipwayError(
      "invalid_input",
      `SOURCE_DATE_EPOCH ${request.sourceDateEpoch} is not a time in seconds`,
    );
  }
}

/** The run image's rootfs is built on this machine, so it has this machine's architecture. */
function ociArchitecture(): string {
  const goNames: Partial<Record<NodeJS.Architecture, string>> = { x64: "amd64", ia32: "386" };
  return goNames[process.arch] ?? process.arch;
}

/**
 * Like Promise.all, but waits for every writer before rejecting, so no layer is still being written
 * into the scratch directory when it is removed.
 */
async function settleAll<T extends readonly unknown[]>(promises: {
  [K in keyof T]: Promise<T[K]>;
}): Promise<T> {
  const settled = await Promise.allSettled(promises as readonly Promise<unknown>[]);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
