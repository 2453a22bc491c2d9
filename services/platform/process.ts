import { spawn } from "node:child_process";

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: RunResult,
  ) {
    super(`${command} exited with ${result.code}: ${lastLines(result.stderr || result.stdout, 5)}`);
    this.name = "CommandError";
  }
}

/**
 * Runs a command to completion and captures its output. Rejects with CommandError on a non-zero exit
 * unless `allowFailure` is set. Never goes through a shell: arguments are passed as they are.
 */
export function run(
  command: string,
  args: readonly string[],
  options: {
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    input?: string | Buffer;
    allowFailure?: boolean;
    signal?: AbortSignal;
    onLine?: (line: string, stream: "stdout" | "stderr") => void;
  } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      // Without an explicit env the child inherits this process's environment.
      env: options.env,
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
      signal: options.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const splitter = (stream: "stdout" | "stderr") => {
      let pending = "";
      return (chunk: Buffer) => {
        if (!options.onLine) return;
        pending += chunk.toString("utf8");
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const line of lines) options.onLine(line, stream);
      };
    };
    const onOut = splitter("stdout");
    const onErr = splitter("stderr");
    child.stdout.on("data", (c: Buffer) => {
      out.push(c);
      onOut(c);
    });
    child.stderr.on("data", (c: Buffer) => {
      err.push(c);
      onErr(c);
    });
    child.on("error", reject);
    child.on("close", (code, sig) => {
      const result = {
        code: code ?? (sig ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (options.onLine) {
        const tailOut = result.stdout.split("\n").pop();
        const tailErr = result.stderr.split("\n").pop();
        if (tailOut) options.onLine(tailOut, "stdout");
        if (tailErr) options.onLine(tailErr, "stderr");
      }
      if (result.code !== 0 && !options.allowFailure) {
        reject(new CommandError([command, ...args.slice(0, 3)].join(" "), result));
      } else resolve(result);
    });
    // A command that exits without reading its input closes the pipe: that is not our error.
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
  });
}

export function lastLines(text: string, n: number): string {
  return text.trimEnd().split("\n").slice(-n).join("\n");
}
