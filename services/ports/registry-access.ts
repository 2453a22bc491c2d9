/** What a cluster pulls one tool's images with: a registry host and a credential for it. */
export interface PullCredentials {
  /** `host[:port]`, as in the image references. */
  readonly registry: string;
  readonly username: string;
  readonly password: string;
}

/**
 * A tool's access to the image registry. With Harbor each tool has its own private project and a
 * pull-only robot account; with a plain registry every tool shares one credential.
 */
export interface ToolRegistryAccess {
  /** Makes sure the builder's push to `tool-<tool>/…` can land (Harbor: the project exists). Idempotent. */
  preparePush(tool: string): Promise<void>;
  /** The credential the tool's pods pull with; created on first use. */
  pullCredentials(tool: string): Promise<PullCredentials>;
  /** Replaces the tool's pull credential; the old one stops working (Harbor). */
  rotatePullCredentials(tool: string): Promise<PullCredentials>;
}

/** A tool's stored pull credential (encrypted at rest by the adapter). */
export interface PullCredentialRecord {
  readonly tool: string;
  /** Harbor's robot id, for rotating its secret. */
  readonly robot_id: number;
  readonly username: string;
  readonly password: string;
  readonly created_at: string;
}

export interface PullCredentialStore {
  get(tool: string): Promise<PullCredentialRecord | undefined>;
  put(record: PullCredentialRecord): Promise<void>;
  delete(tool: string): Promise<void>;
}
