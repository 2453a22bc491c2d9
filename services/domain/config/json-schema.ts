import { z } from "zod";
import { componentsConfigSchema } from "./schema.js";

/** Where the schema is published; editors find it through a `# yaml-language-server: $schema=…` comment. */
export const COMPONENTS_SCHEMA_PATH = "/api/v1/schemas/slipway.json";

/**
 * The JSON Schema (draft 2020-12) of `slipway.yaml`, generated from the zod schema so that it cannot drift.
 * It describes what a user writes (zod's input side): defaults appear as `default`. Rules across fields
 * (component type vs. run fields, `reuse_from` targets) are not expressible here and are checked only by
 * `parseComponentsConfig`. `docs/slipway.schema.json` is this object; a test keeps it in sync.
 */
export function componentsJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(componentsConfigSchema, { io: "input", unrepresentable: "any" });
}
