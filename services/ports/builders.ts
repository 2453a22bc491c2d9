/**
 * Which builder process runs which build, and whether that process still lives: each builder renews a
 * heartbeat that expires soon after it stops (a crash, kill -9, a lost machine). A build whose builder's
 * heartbeat expired is an orphan nobody will finish; the recovery re-runs or fails it.
 */
export interface BuilderRegistry {
  /** This process's builder id, recorded on the builds it starts. */
  readonly id: string;
  /** Notes that this builder takes `buildId`; called before the build is marked running. */
  took(buildId: string): Promise<void>;
  /** The build ended here, whichever way. */
  finished(buildId: string): Promise<void>;
  /** False once the builder's heartbeat expired. */
  alive(builderId: string): Promise<boolean>;
  /** The builds each builder whose heartbeat expired had taken and not finished. */
  orphans(): Promise<{ readonly builder: string; readonly builds: readonly string[] }[]>;
  /** Forgets a dead builder once its builds were dealt with. */
  forget(builderId: string): Promise<void>;
}
