/**
 * Where tests build and cache the stack images: shared by every test file and run on a machine, so only
 * the first run pays the ~2 minutes of debootstrap. Point SLIPWAY_TEST_STACK_HOME at an empty directory
 * to prove a new machine's first run.
 */
export const TEST_STACK_HOME = process.env.SLIPWAY_TEST_STACK_HOME ?? "/var/tmp/slipway-test-stack";

/**
 * SLIPWAY_TEST_BUILD_BACKEND=pipelines runs the suite's servers with that build backend (docs/tekton.md):
 * every app a test deploys is then built by `pipelines/` as written. A test that names a backend keeps it.
 */
export function testBuildBackend(): Record<string, string> {
  const backend = process.env.SLIPWAY_TEST_BUILD_BACKEND;
  return backend ? { SLIPWAY_BUILD_BACKEND: backend } : {};
}
