import type { Command } from "commander";
import { ApiError, type ApiClient } from "./client.js";
import { jsonOption, print as printAnswer, resolveTool, toolOption } from "./options.js";

interface WebserviceStatus {
  tool: string;
  state: string;
  release_id: string | null;
  commit: string | null;
  image_digest: string | null;
  address: string | null;
  replicas_wanted: number | null;
  replicas_ready: number | null;
  replicas: { replica: number; address: string }[];
  started_at: string | null;
  stopped_at: string | null;
  logged_releases: string[];
  note?: string | null;
  /** The cluster profile's cluster (older servers do not send it). */
  kubernetes?: { status: string; reason: string | null; since: string; warnings: string[] } | null;
}

/** `slipway webservice status|logs|restart|stop|start`: thin calls to /api/v1/tools/:tool/webservice. */
export function registerWebserviceCommands(
  program: Command,
  client: () => Promise<ApiClient>,
  defaultTool: string | undefined,
): void {
  const ws = program
    .command("webservice")
    .description("the tool's webservice: status, output, restart, stop, start");
  const base = async (o: { tool?: string }) => {
    const c = await client();
    return { c, path: `/api/v1/tools/${await resolveTool(c, o.tool ?? defaultTool)}/webservice` };
  };
  const print = (asJson: boolean | undefined, data: unknown, text: string) =>
    printAnswer(asJson, data, () => text);

  ws.command("status")
    .description("what serves the tool: state, release, commit, image, address, since when")
    .addOption(toolOption())
    .addOption(jsonOption())
    .action(async (o: { tool?: string; json?: boolean }) => {
      const { c, path } = await base(o);
      const s = await c.request<WebserviceStatus>("GET", path);
      print(o.json, s, statusText(s));
    });

  ws.command("logs")
    .description(
      "the webservice's kept output (last 5 releases, 2000 lines each), also after its container is gone",
    )
    .addOption(toolOption())
    .option("-f, --follow", "keep printing new lines until interrupted")
    .option("--release <id>", "a release's output (default: the live one)")
    .option("--tail <n>", "how many of the last lines", "200")
    .addOption(jsonOption())
    .action(
      async (o: { tool?: string; follow?: boolean; release?: string; tail: string; json?: boolean }) => {
        const { c, path } = await base(o);
        const q = new URLSearchParams({ tail: o.tail });
        if (o.release) q.set("release", o.release);
        if (!o.follow) {
          const r = await c.request<{ release_id: string; lines: string[] }>(
            "GET",
            `${path}/logs?${q.toString()}`,
          );
          print(o.json, r, r.lines.join("\n"));
          return;
        }
        q.set("follow", "true");
        const res = await c.raw("GET", `${path}/logs?${q.toString()}`);
        if (!res.ok || !res.body) {
          const body = (await res.json().catch(() => undefined)) as
            { error?: { code?: string; message?: string } } | undefined;
          throw new ApiError(
            res.status,
            body?.error?.code ?? "http_error",
            body?.error?.message ?? `HTTP ${res.status}`,
          );
        }
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) process.stdout.write(chunk);
      },
    );

  for (const [verb, what] of [
    ["restart", "restart the webservice as a new release of the live one's image"],
    ["stop", "stop the webservice: the proxy answers 503 until `webservice start`"],
    ["start", "start a stopped webservice again (the last live release, as a new release)"],
  ] as const) {
    ws.command(verb)
      .description(what)
      .addOption(toolOption())
      .addOption(jsonOption())
      .action(async (o: { tool?: string; json?: boolean }) => {
        const { c, path } = await base(o);
        const r = await c.request<WebserviceStatus | { release_id: string }>("POST", `${path}/${verb}`);
        print(
          o.json,
          r,
          "state" in r
            ? statusText(r)
            : `${verb === "start" ? "starting" : "restarting"} as release ${r.release_id}; see \`slipway releases\``,
        );
      });
  }
}

function statusText(s: WebserviceStatus): string {
  const lines = [`${s.tool}: ${s.state}`];
  if (s.release_id) lines.push(`  release  ${s.release_id} (commit ${(s.commit ?? "?").slice(0, 12)})`);
  if (s.image_digest) lines.push(`  image    ${s.image_digest}`);
  const wanted = s.replicas_wanted ?? 1;
  if (wanted > 1 || (s.replicas_ready ?? 0) > 1 || (s.replicas_ready !== null && s.replicas.length === 0)) {
    lines.push(`  replicas ${s.replicas_ready ?? 0} of ${s.replicas_wanted ?? "?"} up`);
    for (const r of s.replicas) lines.push(`    #${r.replica}  ${r.address}`);
  } else if (s.address) lines.push(`  address  ${s.address}`);
  if (s.started_at) lines.push(`  live     since ${s.started_at}`);
  if (s.stopped_at) lines.push(`  stopped  at ${s.stopped_at}; \`slipway webservice start\` starts it again`);
  if (s.logged_releases.length) lines.push(`  output kept for releases ${s.logged_releases.join(", ")}`);
  if (s.note) lines.push(`  note     ${s.note}`);
  const k = s.kubernetes;
  if (k && k.status !== "available") {
    lines.push(`  kubernetes ${k.status} since ${k.since}${k.reason ? `: ${k.reason}` : ""}`);
  }
  for (const w of k?.warnings ?? []) lines.push(`  warning  ${w}`);
  return lines.join("\n");
}
