import type { ManifestDeleter } from "../../ports/registry.js";
import type { Logger } from "../../platform/logger.js";
import type { LocalImages, PulledImage } from "../../ports/local-images.js";
import type { ReleaseStore, RouteStore } from "../../ports/store.js";
import type { AfterLive } from "./deployer.js";
import type { Release } from "./release.js";

/**
 * Keeps the images of a tool's newest `keep` releases that went live (and of every newer release, the
 * live one and any deploying) and deletes the older ones' manifests from the registry, after each release
 * goes live. Failed releases do not count toward `keep`, so a run of failed deploys never pushes the
 * good rollback targets out. Rollbacks reuse images, so an image is
 * deleted only when no kept release runs it. A release whose image is gone is marked so, and rollback
 * refuses it with a clear message. The blobs are freed by the registry's garbage collection, which runs
 * when the server starts (it must not run while builds push). Where releases run on this machine, the
 * copies the runtime pulled (`local`) are pruned by the same rule, so podman's store does not grow with
 * every deploy.
 */
export class ImageRetention implements AfterLive {
  constructor(
    private readonly deps: {
      readonly store: ReleaseStore & RouteStore;
      readonly registry: ManifestDeleter;
      readonly keep: number;
      readonly logger: Logger;
      /** The runtime's pulled copies; none on a cluster, whose nodes prune their own. */
      readonly local?: LocalImages | undefined;
    },
  ) {}

  async afterLive(release: Release): Promise<void> {
    await this.prune(release.tool);
  }

  /** Returns how many images were deleted. */
  async prune(tool: string): Promise<number> {
    const { store, keep } = this.deps;
    // Looked at before the releases are read: an image pulled after this look, for a release made after
    // that read (a deploy starting meanwhile), is then never taken for an old one and removed under it.
    const pulled = await this.pulledCopies(tool);
    // Newest first; far more than anyone keeps, so older ones were pruned on earlier runs.
    const all = await store.listReleases(tool, keep + 200);
    const route = await store.getRoute(tool);
    let served = 0;
    let cut = all.length;
    for (const [i, r] of all.entries()) {
      if (r.status === "live" || r.status === "superseded") served++;
      if (served === keep) {
        cut = i + 1;
        break;
      }
    }
    const keepDigests = new Set(all.slice(0, cut).map((r) => r.image_digest));
    const live = all.find((r) => r.id === route?.release_id);
    if (live) keepDigests.add(live.image_digest);
    for (const r of all) if (r.status === "deploying") keepDigests.add(r.image_digest);
    const older = all.slice(cut);

    let deleted = 0;
    const done = new Set<string>();
    for (const old of older) {
      if (old.image_deleted_at || keepDigests.has(old.image_digest) || done.has(old.image_digest)) continue;
      done.add(old.image_digest);
      try {
        await this.deps.registry.deleteManifest(repositoryOf(old.image), old.image_digest);
      } catch (error) {
        this.deps.logger.warn(
          { tool, releaseId: old.id, err: error },
          "could not delete an old release's image",
        );
        continue;
      }
      deleted++;
      const now = new Date().toISOString();
      for (const same of older) {
        if (same.image_digest === old.image_digest && !same.image_deleted_at) {
          await store.updateRelease(same.id, { image_deleted_at: now });
        }
      }
    }
    if (deleted > 0) this.deps.logger.info({ tool, deleted, keep }, "deleted images of old releases");
    await this.discardCopies(tool, pulled, keepDigests);
    return deleted;
  }

  private async pulledCopies(tool: string): Promise<PulledImage[]> {
    try {
      return (await this.deps.local?.pulled(tool)) ?? [];
    } catch (error) {
      this.deps.logger.warn({ tool, err: error }, "could not list the local copies of release images");
      return [];
    }
  }

  /**
   * Every copy no kept release runs, not only `older`'s: also those an earlier pass left because a
   * container still used them then (a stopped release, a job run). A copy a container uses stays.
   */
  private async discardCopies(tool: string, pulled: readonly PulledImage[], keep: ReadonlySet<string>) {
    const { local, logger } = this.deps;
    if (!local) return;
    let removed = 0;
    for (const image of pulled) {
      if (image.inUse || image.digests.some((d) => keep.has(d))) continue;
      try {
        if (await local.discard(image.id)) removed++;
      } catch (error) {
        logger.warn(
          { tool, imageId: image.id, err: error },
          "could not remove a local copy of a release image",
        );
      }
    }
    if (removed > 0) logger.info({ tool, removed }, "removed local copies of old releases' images");
  }
}

/** `127.0.0.1:5000/tool-x/web:<tag>` → `tool-x/web`. */
export function repositoryOf(image: string): string {
  const withoutHost = image.slice(image.indexOf("/") + 1);
  return withoutHost.replace(/[:@][^/]*$/, "");
}
