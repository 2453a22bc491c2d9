import { Option } from "commander";
import { ApiError, type ApiClient } from "./client.js";
import { toolsOfGitRemotes, type VisibleTool } from "./tool-choice.js";

/**
 * What every per-tool CLI command module shares: the `--tool` and `--json` options, printing an answer
 * as JSON or as text, and finding the tool when `--tool` is left out.
 */

export const toolOption = () =>
  new Option(
    "--tool <name>",
    "the tool (default: SLIPWAY_TOOL, else the tool this git repository's remote on Slipway is, else the token's only tool)",
  );

export const jsonOption = () => new Option("--json", "print JSON for scripts");

/** Prints the API's answer as JSON for scripts, or the human text. */
export function print(asJson: boolean | undefined, data: unknown, human: () => string): void {
  process.stdout.write(asJson ? JSON.stringify(data, null, 2) + "\n" : human() + "\n");
}

/**
 * The tool a command is about, URL-encoded: the one given (`--tool`, else SLIPWAY_TOOL), else the one the
 * working directory's git remote pushes to on this server, else the token's only tool.
 */
export async function resolveTool(c: ApiClient, given: string | undefined): Promise<string> {
  if (given) return encodeURIComponent(given);
  const list = await c.list<VisibleTool>("/api/v1/tools");
  const fromRemotes = await toolsOfGitRemotes(list, c.baseUrl);
  if (fromRemotes.length === 1) return encodeURIComponent(fromRemotes[0]!);
  if (fromRemotes.length === 0 && list.length === 1) return encodeURIComponent(list[0]!.name);
  const choices = fromRemotes.length > 1 ? fromRemotes : list.map((t) => t.name);
  const why =
    fromRemotes.length > 1
      ? `this repository's remotes point at ${choices.length} tools`
      : choices.length === 0
        ? "this token sees no tool; create one with `slipway tools create <name>`"
        : `this token sees ${choices.length} tools and no git remote here points at one`;
  throw new ApiError(
    0,
    "invalid_input",
    `which tool? pass --tool <name> or set SLIPWAY_TOOL: ${why}` +
      (choices.length ? `\n  choices: ${choices.join(", ")}` : ""),
  );
}
