import { defineConfig } from "vitest/config";

// Integration tests start real Redis, registries, git servers and podman containers; they are slow
// and share the two cores, so files run one at a time and each test gets a generous timeout.
export default defineConfig({
  test: {
    include: ["services/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});
