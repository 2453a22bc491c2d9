import type { Command } from "commander";
import { ApiClient, ApiError } from "./client.js";
import { jsonOption, print, resolveTool, toolOption } from "./options.js";

interface EnvVarRow {
  name: string;
  value: string | null;
}

interface Change {
  name: string;
  created?: boolean;
  release_id: string | null;
  message: string;
}

/**
 * `envvars create|list|show|delete`: thin calls to `/api/v1/tools/:tool/envvars`. `create NAME` without
 * a value reads it from standard input, so secrets stay out of shell history and `ps`.
 */
export function registerEnvvarsCommands(
  program: Command,
  client: () => Promise<ApiClient>,
  defaultTool: string | undefined,
): void {
  const base = async (given: string | undefined) => {
    const c = await client();
    return { c, route: `/api/v1/tools/${await resolveTool(c, given ?? defaultTool)}/envvars` };
  };

  const envvars = program
    .command("envvars")
    .description("environment variables and secrets of a tool's processes (never of its builds)");
  envvars
    .command("create <name> [value]")
    .description("create or replace a variable and restart the tool; without VALUE, read it from stdin")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (name: string, value: string | undefined, o: { tool?: string; json?: boolean }) => {
      const given = value ?? (await readValue(name));
      const { c, route } = await base(o.tool);
      const r = await c.request<Change>("PUT", `${route}/${encodeURIComponent(name)}`, { value: given });
      print(!!o.json, r, () => r.message);
    });
  envvars
    .command("list")
    .description("list variables; values are shown as *** unless --show-values")
    .option("--show-values", "print the values too")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (o: { tool?: string; json?: boolean; showValues?: boolean }) => {
      const { c, route } = await base(o.tool);
      const list = await c.request<EnvVarRow[]>("GET", `${route}${o.showValues ? "?show_values=true" : ""}`);
      print(!!o.json, list, () =>
        list.length
          ? list.map((v) => `${v.name.padEnd(24)} ${v.value ?? "***"}`).join("\n")
          : "no environment variables",
      );
    });
  envvars
    .command("show <name>")
    .description("print one variable with its value")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (name: string, o: { tool?: string; json?: boolean }) => {
      const { c, route } = await base(o.tool);
      const v = await c.request<EnvVarRow>("GET", `${route}/${encodeURIComponent(name)}`);
      print(!!o.json, v, () => `${v.name}=${v.value ?? ""}`);
    });
  envvars
    .command("delete <name>")
    .description("delete a variable and restart the tool")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (name: string, o: { tool?: string; json?: boolean }) => {
      const { c, route } = await base(o.tool);
      const r = await c.request<Change>("DELETE", `${route}/${encodeURIComponent(name)}`);
      print(!!o.json, r, () => r.message);
    });
}

/**
 * The value from standard input: piped, all of it less one final line break (`echo` adds one); on a
 * terminal, one line typed without echo.
 */
async function readValue(name: string): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) return readHidden(`value of ${name} (not shown): `);
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(chunk as Buffer);
  return stripFinalNewline(Buffer.concat(chunks).toString("utf8"));
}

export function stripFinalNewline(text: string): string {
  return text.replace(/\r?\n$/, "");
}

function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding("utf8");
  return new Promise((resolve, reject) => {
    let value = "";
    const done = (error?: Error) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (input: string) => {
      for (const ch of input) {
        if (ch === "\r" || ch === "\n") return done();
        if (ch === "\u0003" || ch === "\u0004") return done(new ApiError(0, "cancelled", "cancelled"));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on("data", onData);
  });
}
