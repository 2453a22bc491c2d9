/** One image of a tool that a runtime pulled onto this machine to run it (podman's image store). */
export interface PulledImage {
  readonly id: string;
  /** The manifest digests it was pulled by (`sha256:…`): a release's `image_digest`. */
  readonly digests: readonly string[];
  /** A container (running or stopped) uses it; podman refuses to remove it meanwhile. */
  readonly inUse: boolean;
}

/**
 * The copies of a tool's release images that a runtime pulled onto this machine to run them. Image
 * retention removes those of releases it no longer keeps, by the same rule as the registry's copies.
 */
export interface LocalImages {
  pulled(tool: string): Promise<PulledImage[]>;
  /**
   * Removes one pulled image unless a container uses it (one started since `pulled` looked keeps it,
   * until a later pass); false when it was kept.
   */
  discard(id: string): Promise<boolean>;
}
