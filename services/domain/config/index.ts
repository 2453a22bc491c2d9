export { cpus } from "./cpu.js";
export { componentsJsonSchema, COMPONENTS_SCHEMA_PATH } from "./json-schema.js";
export {
  CONFIG_FILE_NAMES,
  formatProblem,
  parseComponentsConfig,
  type Component,
  type ComponentBuild,
  type ComponentRun,
  type ComponentsConfig,
  type ConfigDeployPolicy,
  type ConfigProblem,
} from "./parse.js";
export {
  defaultConfigFromProcfile,
  describeProcfileRoles,
  procfileRoles,
  WEB_PORT,
  type ProcfileRole,
} from "./procfile-default.js";
export {
  COMPONENT_TYPES,
  componentsConfigSchema,
  DEFAULT_CPU,
  DEFAULT_MEMORY,
  MAX_REPLICAS,
  type ComponentType,
} from "./schema.js";
