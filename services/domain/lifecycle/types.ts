/**
 * What the CNB lifecycle (detect → restore → build) hands to the exporter. Paths are on the host; the
 * exporter lays them out in the image at the given image paths.
 */
export interface ProcessType {
  readonly type: string;
  readonly command: readonly string[];
  readonly args: readonly string[];
  readonly default: boolean;
  readonly workingDir?: string | undefined;
  readonly buildpackId: string;
}

export interface GroupEntry {
  readonly id: string;
  readonly version: string;
  readonly api: string;
  readonly homepage?: string | undefined;
}

export interface LaunchLayer {
  readonly buildpackId: string;
  readonly name: string;
  /** Directory on the host holding the layer's contents. */
  readonly hostDir: string;
  /** Where it lives in the image: `/layers/<buildpack id with / as _>/<name>`. */
  readonly imagePath: string;
}

export interface LifecycleResult {
  readonly group: readonly GroupEntry[];
  readonly processes: readonly ProcessType[];
  /** Launch layers in buildpack order, then layer name order. */
  readonly layers: readonly LaunchLayer[];
  /** The built application directory on the host, exported to `/workspace`. */
  readonly appDir: string;
  /**
   * A host directory exported to `/cnb`: `lifecycle/launcher`, `lifecycle/env` and `process/<type>`
   * scripts that apply the layers' launch environment and start a process.
   */
  readonly cnbDir: string;
  readonly labels: readonly { readonly key: string; readonly value: string }[];
  /** The stack the app was built on; its run image is the one the app image must be layered on. */
  readonly stack?: Stack | undefined;
}

/** The stack: the image builds run in, and the root filesystem app images are layered on. */
export interface Stack {
  /** Content hash of the stack's inputs (package lists, CA bundle, Slipway's stack version). */
  readonly id: string;
  /** The Debian release both images are made from (`bookworm`, `trixie`); absent: the default one. */
  readonly suite?: string | undefined;
  /** The major.minor of the images' python3 (Debian's one Python of that release). */
  readonly python?: string | undefined;
  /** A podman image reference for the build image. */
  readonly buildImage: string;
  /** Directory holding the run image's root filesystem. */
  readonly runRootfs: string;
  /** User and group the build runs as, and the app image's `User`. */
  readonly uid: number;
  readonly gid: number;
}

/** A Debian release a stack can be made from, and the Python it brings. */
export interface StackSuite {
  readonly suite: string;
  /** major.minor */
  readonly python: string;
}

/** The stacks an app may choose from by the Python it asks for. */
export interface StackCatalogue {
  /** Every suite, the default (LifecycleInput.stack's) first. */
  readonly suites: readonly StackSuite[];
  /** The stack of `suite`, made first when this machine has none (minutes: two debootstraps). */
  get(suite: string, onLog: (line: string) => void): Promise<Stack>;
}
