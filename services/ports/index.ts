/**
 * Ports: the small interfaces through which the domain reaches outside systems. Adapters live in
 * `services/adapters/<system>/` and depend on these, never the reverse.
 */
export type { SourceFetcher, FetchRequest, FetchedSource } from "./source.js";
export type { BuildSandbox, Sandbox, SandboxSpec, ExecResult } from "./sandbox.js";
export type { ImageRegistry, BlobRef } from "./registry.js";
export type { AppRuntime, RunSpec, RunningApp } from "./runtime.js";
export type { BuildLogs, LogLine } from "./logs.js";
