/**
 * Where tests build and cache the stack images: shared by every test file and run on a machine, so only
 * the first run pays the ~2 minutes of debootstrap. Point SLIPWAY_TEST_STACK_HOME at an empty directory
 * to prove a new machine's first run.
 */
export const TEST_STACK_HOME = process.env.SLIPWAY_TEST_STACK_HOME ?? "/var/tmp/slipway-test-stack";
