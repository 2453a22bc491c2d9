import type { Command } from "commander";
import type { ApiClient } from "./client.js";
import { jsonOption, resolveTool, toolOption } from "./options.js";

interface ReleaseRow {
  id: string;
  status: string;
  live: boolean;
  commit: string;
  image: string;
  image_digest: string;
  image_deleted: boolean;
  trigger: { kind: string; ref: string; actor?: string };
  build_id: string;
  rollback_of: string | null;
  restart_of?: string | null;
  reason: string | null;
  last_probe: string | null;
  log_tail: string[];
  created_at: string;
  finished_at: string | null;
}

/** `slipway releases` and `slipway rollback [<release>]`: thin calls to /api/v1/tools/:tool/releases. */
export function registerReleaseCommands(
  program: Command,
  client: () => Promise<ApiClient>,
  defaultTool: string | undefined,
): void {
  program
    .command("releases")
    .description("list a tool's releases, newest first: what runs, from which commit, and why it failed")
    .addOption(toolOption())
    .addOption(jsonOption())
    .option("--log <release>", "print one release's deploy log (a rollback's or restart's own log)")
    .action(async (o: { tool?: string; json?: boolean; log?: string }) => {
      const c = await client();
      const tool = await resolveTool(c, o.tool ?? defaultTool);
      if (o.log !== undefined) {
        const log = await c.request<{ lines: string[] }>(
          "GET",
          `/api/v1/tools/${tool}/releases/${encodeURIComponent(o.log)}/logs`,
        );
        process.stdout.write(
          o.json ? JSON.stringify(log, null, 2) + "\n" : log.lines.map((l) => l + "\n").join(""),
        );
        return;
      }
      const list = await c.request<ReleaseRow[]>("GET", `/api/v1/tools/${tool}/releases`);
      if (o.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + "\n");
        return;
      }
      process.stdout.write((list.length ? list.map(releaseLines).join("\n") : "no releases yet") + "\n");
    });

  program
    .command("rollback [release]")
    .description(
      "run an earlier release's image again, without a build (default: the one live before the current one)",
    )
    .addOption(toolOption())
    .option("--no-wait", "return once the rollback is queued")
    .addOption(jsonOption())
    .action(async (id: string | undefined, o: { tool?: string; json?: boolean; wait: boolean }) => {
      const c = await client();
      const tool = await resolveTool(c, o.tool ?? defaultTool);
      const started = Date.now();
      const queued = await c.request<ReleaseRow>("POST", `/api/v1/tools/${tool}/rollback`, {
        release_id: id,
      });
      const say = (line: string) => {
        if (!o.json) process.stderr.write(line + "\n");
      };
      say(
        `rolling back ${decodeURIComponent(tool)} to release ${queued.rollback_of} (commit ${queued.commit.slice(0, 12)}) as release ${queued.id}`,
      );
      let final = queued;
      if (o.wait) {
        let last = queued.status;
        for (;;) {
          final = await c.request<ReleaseRow>(
            "GET",
            `/api/v1/tools/${tool}/releases/${encodeURIComponent(queued.id)}`,
          );
          if (final.status !== last) say(`  ${final.status}`);
          last = final.status;
          if (final.status !== "deploying") break;
          await new Promise((r) => setTimeout(r, 300));
        }
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (o.json) process.stdout.write(JSON.stringify(final, null, 2) + "\n");
      else if (final.status === "deploying") process.stdout.write(`queued: release ${final.id}\n`);
      else if (final.status === "failed") process.stdout.write(`${releaseLines(final)}\n`);
      else process.stdout.write(`live: release ${final.id} in ${seconds} s\n`);
      if (final.status === "failed") process.exitCode = 1;
    });
}

function releaseLines(r: ReleaseRow): string {
  const status = r.live ? "live" : r.status;
  const trigger = triggerText(r);
  const lines = [
    `${r.id}  ${status.padEnd(10)} ${r.commit.slice(0, 12)}  ${r.image_digest.slice(7, 19)}${
      r.image_deleted ? " (image deleted)" : ""
    }  ${trigger}  ${r.created_at}`,
  ];
  if (r.status === "failed") {
    if (r.reason) lines.push(`    ${r.reason}`);
    if (r.last_probe && !(r.reason ?? "").includes(r.last_probe))
      lines.push(`    last probe: ${r.last_probe}`);
    for (const l of r.log_tail.slice(-10)) lines.push(`    | ${l}`);
  }
  return lines.join("\n");
}

/** Why the release exists: by its trigger's kind, so a restart of a rollback reads as a restart. */
function triggerText(r: ReleaseRow): string {
  switch (r.trigger.kind) {
    case "rollback":
      return `rollback of ${r.rollback_of ?? "?"}`;
    case "envvars":
    case "restart": {
      const of = r.restart_of ? ` of ${r.restart_of}` : "";
      return `restart${of}${r.trigger.kind === "envvars" ? " (environment variable change)" : ""}`;
    }
    default:
      return `${r.trigger.kind} ${r.trigger.ref}`;
  }
}
