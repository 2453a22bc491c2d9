import { Option } from "commander";
import { ApiError, type ApiClient } from "./client.js";

/**
 * What every per-tool CLI command module shares: the `--tool` and `--json` options, printing an answer
 * as JSON or as text, and finding the tool when `--tool` is left out.
 */

export const toolOption = () =>
  new Option("--tool <name>", "the tool (default: SLIPWAY_TOOL, or the token's only tool)");

export const jsonOption = () => new Option("--json", "print JSON for scripts");

/** Prints the API's answer as JSON for scripts, or the human text. */
export function print(asJson: boolean | undefined, data: unknown, human: () => string): void {
  process.stdout.write(asJson ? JSON.stringify(data, null, 2) + "\n" : human() + "\n");
}

/** The tool a command is about, URL-encoded: the one given, or the token's only tool. */
export async function resolveTool(c: ApiClient, given: string | undefined): Promise<string> {
  if (given) return encodeURIComponent(given);
  const list = await c.request<{ name: string }[]>("GET", "/api/v1/tools");
  if (list.length === 1) return encodeURIComponent(list[0]!.name);
  throw new ApiError(0, "invalid_input", "which tool? pass --tool <name> or set SLIPWAY_TOOL");
}
