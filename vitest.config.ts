import { configDefaults, defineConfig } from "vitest/config";

// Two suites. `unit`: the domain and pure code with hand-written fakes (test/fakes); no Redis, podman,
// registry or API server (test/unit/no-services.ts refuses to start them), so it runs in seconds and in
// parallel. `integration`: everything under test/ against real Redis, registries, git servers and podman
// containers; slow and sharing the two cores, so its files run one at a time, with generous timeouts.
// The unit suite runs first (groupOrder) so a broken domain fails fast, before any service starts.
export default defineConfig({
  test: {
    reporters: ["default", "./test/summary-reporter.ts"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["services/**/*.test.ts", "test/unit/**/*.test.ts"],
          setupFiles: ["test/unit/no-services.ts"],
          // Unit files share their workers' module cache (no per-file isolation) on threads: starting a
          // fresh fork and importing the domain again per file was most of the suite's time. Every unit
          // file must therefore leave no global state behind (timers, mocks, env) — the fakes are per test.
          pool: "threads",
          isolate: false,
          testTimeout: 30_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/unit/**"],
          globalSetup: ["test/global-setup.ts"],
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 120_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
