import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { format } from "prettier";
import { describe, expect, it } from "vitest";
import { componentsJsonSchema } from "./json-schema.js";

const SCHEMA_FILE = fileURLToPath(new URL("../../../docs/slipway.schema.json", import.meta.url));

describe("componentsJsonSchema", () => {
  it("describes the file a user writes: unknown keys rejected, Toolforge fields and Slipway's additions present", () => {
    const schema = componentsJsonSchema() as {
      additionalProperties: boolean;
      required: string[];
      properties: {
        deploy: unknown;
        components: {
          minProperties: number;
          propertyNames: { maxLength: number };
          additionalProperties: {
            additionalProperties: boolean;
            properties: {
              component_type: { enum: string[] };
              build: { properties: Record<string, unknown> };
              run: { additionalProperties: boolean; properties: Record<string, { default?: unknown }> };
            };
          };
        };
      };
    };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(["components"]);
    expect(schema.properties.deploy).toBeDefined();
    const components = schema.properties.components;
    expect(components.minProperties).toBe(1);
    expect(components.propertyNames.maxLength).toBe(52);
    const component = components.additionalProperties;
    expect(component.additionalProperties).toBe(false);
    expect(component.properties.component_type.enum).toEqual(["continuous", "scheduled", "one-off"]);
    expect(Object.keys(component.properties.build.properties).sort()).toEqual(
      ["ref", "repository", "reuse_from", "use_deprecated_versions", "use_latest_versions"].sort(),
    );
    const run = component.properties.run;
    expect(run.additionalProperties).toBe(false);
    expect(run.properties.memory?.default).toBe("512Mi");
    expect(run.properties.cpu?.default).toBe("100m");
    expect(Object.keys(run.properties)).toEqual(
      expect.arrayContaining([
        "command",
        "port",
        "publish",
        "replicas",
        "schedule",
        "retry",
        "timeout",
        "emails",
      ]),
    );
  });

  // The committed file is what editors and the docs use; it must be exactly the generated schema.
  // Regenerate it with: SLIPWAY_UPDATE_SCHEMA=1 npx vitest run services/domain/config/json-schema.test.ts
  it("equals docs/slipway.schema.json", async () => {
    const generated = componentsJsonSchema();
    if (process.env.SLIPWAY_UPDATE_SCHEMA === "1") {
      const text = await format(JSON.stringify(generated), { parser: "json", printWidth: 110 });
      await writeFile(SCHEMA_FILE, text);
    }
    const committed: unknown = JSON.parse(await readFile(SCHEMA_FILE, "utf8"));
    expect(
      committed,
      "docs/slipway.schema.json is stale: run SLIPWAY_UPDATE_SCHEMA=1 npx vitest run services/domain/config/json-schema.test.ts",
    ).toEqual(generated);
  });
});
