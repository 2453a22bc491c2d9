import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "buildpacks/", ".slipway/", "coverage/", "test/fixtures/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-restricted-properties": [
        "error",
        {
          object: "process",
          property: "env",
          message: "Read the environment only in services/platform/env.ts.",
        },
      ],
    },
  },
  {
    files: ["services/platform/env.ts", "test/**", "bench/**", "**/*.test.ts", "vitest.config.ts"],
    rules: { "no-restricted-properties": "off" },
  },
  {
    // vitest's asymmetric matchers (expect.stringContaining) are typed any.
    files: ["test/**", "**/*.test.ts"],
    rules: { "@typescript-eslint/no-unsafe-assignment": "off" },
  },
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
);
