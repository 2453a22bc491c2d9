export {
  ensureStack,
  stackId,
  SUITES,
  DEFAULT_SUITE,
  type Suite,
  STACK_VERSION,
  BUILD_PACKAGES,
  RUN_PACKAGES,
  type StackConfig,
} from "./stack.js";
export { CNB_USER } from "./rootfs.js";
export { STACK_STEPS, describeStep, type StackStep } from "./progress.js";
