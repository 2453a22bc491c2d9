export interface BlobRef {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
}

/** The slice of the OCI distribution API the exporter and deployer need. */
export interface ImageRegistry {
  /** `host:port` as it appears in image references. */
  readonly host: string;
  hasBlob(repository: string, digest: string): Promise<boolean>;
  /** Uploads a blob from a file unless the repository already has it; returns whether it uploaded. */
  pushBlob(repository: string, blob: BlobRef, path: string): Promise<boolean>;
  /** Stores a manifest under a tag; returns its digest. */
  /** Links a blob another repository of this registry holds, without sending it; false if it could not. */
  mountBlob(repository: string, digest: string, from: string): Promise<boolean>;
  putManifest(repository: string, tag: string, manifest: Uint8Array, mediaType: string): Promise<string>;
  getManifest(
    repository: string,
    reference: string,
  ): Promise<{ digest: string; body: Uint8Array } | undefined>;
}

/** The one registry call retention needs (RegistryClient.deleteManifest). */
export interface ManifestDeleter {
  deleteManifest(repository: string, digest: string): Promise<boolean>;
}
