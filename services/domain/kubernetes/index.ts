/**
 * Kubernetes manifests for the cluster profile, as pure functions: a tool's workloads in, plain API
 * objects out. Nothing here talks to a cluster; the adapter applies what these render.
 */
export { expandSchedule, validateCron } from "./cron.js";
export {
  DEFAULT_CPU,
  DEFAULT_MEMORY,
  type HealthCheck,
  type OneOffWorkload,
  type RenderOptions,
  type ScheduledWorkload,
  type SecretEnv,
  type ToolWorkload,
  type WebserviceWorkload,
  type WorkerWorkload,
  type WorkloadCommand,
  type WorkloadKind,
  resources,
  validateWorkload,
} from "./model.js";
export {
  LABELS,
  MANAGED_BY,
  boundedName,
  envSecretName,
  namespaceName,
  selectorLabels,
  toolLabels,
  workloadLabels,
} from "./names.js";
export {
  DEFAULT_QUOTA,
  type KubernetesObject,
  type Rendered,
  type ToolManifest,
  type ToolQuota,
  envChecksum,
  oneOffJobName,
  renderAll,
  renderEnvSecret,
  renderNamespace,
  renderWorkload,
  sortObjects,
  toolHost,
} from "./render.js";
export { type ReleaseSource, type SkippedComponent, commandOf, workloadsFromConfig } from "./from-config.js";
export { PULL_SECRET_NAME, renderPullSecret } from "./pull-secret.js";
export {
  JOB_RUN_ROLE,
  RUN_LABELS,
  type JobRunSpec,
  jobRunName,
  jobRunSecretName,
  renderJobRun,
  runnerSelector,
} from "./job-run.js";
export { type LimitPolicy, effectivePolicy, limitProblems, parseQuantity, policyOf } from "./limits.js";
export { REDACTED, redactSecrets } from "./redact.js";
export { toApplyableYaml, toYaml } from "./yaml.js";
