import { readFileSync } from "node:fs";
import path from "node:path";
import { Argument, Command, Option } from "commander";
import { ROTATABLE_SECRETS } from "../../domain/tools/tool-service.js";
import type { Config } from "../../platform/env.js";
import { ApiClient, ApiError } from "./client.js";
import { validateConfigFile } from "./config-validate.js";
import { jsonOption as json, print as out, resolveTool, toolOption as toolOpt } from "./options.js";
import { registerReleaseCommands } from "./release-commands.js";
import { registerEnvvarsCommands } from "./envvars-commands.js";
import { registerGitlabCommands } from "./gitlab-commands.js";
import { registerJobsCommands } from "./jobs-commands.js";
import { registerNotifyCommands } from "./notify-commands.js";
import { registerRenderCommands } from "./render-commands.js";
import { registerStackCommands } from "./stack-commands.js";
import { registerWebserviceCommands } from "./webservice-commands.js";

interface BuildRow {
  id: string;
  status: string;
  reason: string | null;
  phase: string | null;
  buildpack: string | null;
  commit: string;
  ref: string;
  image: string | null;
  image_digest: string | null;
  log_tail: string[];
  created_at: string;
  finished_at: string | null;
}

/** `slipway …`: every command is a thin call to the API; `--json` prints the API's answer as is. */
export function buildCli(config: Config, startServer: (role: string) => Promise<void>): Command {
  const program = new Command("slipway")
    .description("Push-to-deploy for community tools")
    .version(packageVersion(config.repoRoot), "-V, --version", "print Slipway's version")
    .showHelpAfterError();
  const client = () => ApiClient.fromConfig(config);

  program
    .command("server")
    .description("run Slipway (API, webhooks, git remote, front proxy, workers)")
    .addOption(
      new Option("--role <role>", "run one role")
        .choices(["all", "api", "builder", "deployer"])
        .default("all"),
    )
    .action((o: { role: string }) => startServer(o.role));

  registerEnvvarsCommands(program, client, config.cli.tool);
  registerReleaseCommands(program, client, config.cli.tool);
  registerJobsCommands(program, client, config.cli.tool);
  registerWebserviceCommands(program, client, config.cli.tool);
  registerRenderCommands(program, client);
  registerStackCommands(program, config);
  const tools = program.command("tools").description("create and inspect tools");
  registerGitlabCommands(tools, client);
  registerNotifyCommands(tools, client);
  tools
    .command("create <name>")
    .description("create a tool; prints its secrets once")
    .addOption(json())
    .action(async (name: string, o: { json?: boolean }) => {
      const t = await (await client()).request<Record<string, string>>("POST", "/api/v1/tools", { name });
      out(!!o.json, t, () =>
        [
          `Created tool ${t.name}. Keep these; the secrets are not shown again.`,
          `  token:          ${t.token}`,
          `  git remote:     ${t.git_url}   (user: anything, password: the token)`,
          `  GitLab webhook: ${t.webhook_url}   secret: ${t.webhook_secret}`,
          `  redeploy URL:   ${t.redeploy_url}`,
          `  web:            ${t.web_url}`,
        ].join("\n"),
      );
    });
  tools
    .command("list")
    .description("the tools this token can see, with their web addresses")
    .addOption(json())
    .action(async (o: { json?: boolean }) => {
      const list = await (await client()).list<{ name: string; web_url: string }>("/api/v1/tools");
      out(!!o.json, list, () =>
        list.length ? list.map((t) => `${t.name}\t${t.web_url}`).join("\n") : "no tools yet",
      );
    });
  tools
    .command("show <name>")
    .description("a tool at a glance: live release, webservice, jobs, addresses, GitLab link")
    .addOption(json())
    .action(async (name: string, o: { json?: boolean }) => {
      const c = await client();
      const base = `/api/v1/tools/${encodeURIComponent(name)}`;
      const t = await c.request<ToolDetail>("GET", base);
      if (o.json) {
        out(true, t, () => "");
        return;
      }
      // The summary's other parts have routes of their own; one that fails shows as unknown.
      const [web, jobs] = await Promise.all([
        c
          .request<{ state: string; address: string | null }>("GET", `${base}/webservice`)
          .catch(() => undefined),
        c.list<unknown>(`${base}/jobs`).catch(() => undefined),
      ]);
      out(false, t, () => toolSummary(t, web, jobs));
    });

  tools
    .command("rotate")
    .description(
      "replace a leaked secret of a tool (its token, webhook secret or redeploy URL); the old one stops working at once, the new one is shown once",
    )
    .argument("<name>", "the tool")
    .addArgument(new Argument("<secret>", "the secret to replace").choices(ROTATABLE_SECRETS))
    .addOption(json())
    .action(async (name: string, secret: string, o: { json?: boolean }) => {
      const t = await (
        await client()
      ).request<Record<string, string>>("POST", `/api/v1/tools/${encodeURIComponent(name)}/rotate`, {
        secret,
      });
      out(!!o.json, t, () =>
        [
          `Replaced the ${secret} of tool ${t.name}; the old one no longer works. Keep this; it is not shown again.`,
          ...(t.token ? [`  token:          ${t.token}`] : []),
          ...(t.webhook_secret
            ? [
                `  GitLab webhook: ${t.webhook_url}   secret: ${t.webhook_secret}   (set it in the project's webhook)`,
              ]
            : []),
          ...(t.redeploy_url ? [`  redeploy URL:   ${t.redeploy_url}`] : []),
        ].join("\n"),
      );
    });

  tools
    .command("delete <name>")
    .description(
      "delete a tool and everything of it: containers, network, images, git repository, env vars, tokens, jobs, logs, releases, builds (admin token)",
    )
    .option("--force", "cancel the tool's queued or running builds instead of refusing")
    .addOption(json())
    .action(async (name: string, o: { force?: boolean; json?: boolean }) => {
      const query = o.force ? "?force=true" : "";
      const d = await (
        await client()
      ).request<{ name: string; removed: string[]; cancelled_builds: string[] }>(
        "DELETE",
        `/api/v1/tools/${encodeURIComponent(name)}${query}`,
      );
      out(!!o.json, d, () =>
        [
          `${d.name}: deleted`,
          ...(d.cancelled_builds.length ? [`cancelled builds: ${d.cancelled_builds.join(", ")}`] : []),
          `removed: ${d.removed.join("; ")}`,
        ].join("\n"),
      );
    });

  const build = program.command("build").description("start, follow and inspect builds");
  build
    .command("start")
    .description("build the tool's ref now")
    .addOption(toolOpt())
    .option("--ref <ref>", "branch, tag or ref to build (default: the last one pushed)")
    .option("--force", "build even if this commit was built before")
    .option("--no-cache", "ignore cached layers (builds even a commit built before)")
    .addOption(json())
    .action(async (o: { tool?: string; ref?: string; force?: boolean; cache: boolean; json?: boolean }) => {
      const c = await client();
      const tool = await resolveTool(c, o.tool ?? config.cli.tool);
      const r = await c.request<{ status: string; build_id?: string; reason: string }>(
        "POST",
        `/api/v1/tools/${tool}/builds`,
        { ref: o.ref, force: !!o.force, no_cache: !o.cache },
      );
      out(!!o.json, r, () =>
        r.build_id
          ? `${r.status}: build ${r.build_id} — ${r.reason}\nfollow it with: slipway build logs ${r.build_id} -f`
          : `${r.status}: ${r.reason}`,
      );
    });
  build
    .command("list")
    .description("the tool's builds, newest first")
    .addOption(toolOpt())
    .addOption(json())
    .action(async (o: { tool?: string; json?: boolean }) => {
      const c = await client();
      const tool = await resolveTool(c, o.tool ?? config.cli.tool);
      const list = await c.list<BuildRow>(`/api/v1/tools/${tool}/builds`);
      out(!!o.json, list, () =>
        list.length
          ? list
              .map(
                (b) =>
                  `${b.id}  ${b.status.padEnd(10)} ${b.commit.slice(0, 12)}  ${b.ref}  ${b.reason ?? ""}`,
              )
              .join("\n")
          : "no builds yet",
      );
    });
  build
    .command("show <id>")
    .description("one build: status, phase, commit, image, and the last log lines of a failure")
    .addOption(json())
    .action(async (id: string, o: { json?: boolean }) => {
      const b = await (await client()).request<BuildRow>("GET", `/api/v1/builds/${encodeURIComponent(id)}`);
      out(!!o.json, b, () =>
        [
          `build ${b.id}: ${b.status}${b.phase ? ` (phase ${b.phase})` : ""}`,
          `  commit ${b.commit} (${b.ref})`,
          b.reason ? `  ${b.reason}` : "",
          b.image_digest ? `  image ${b.image}@${b.image_digest}` : "",
          ...(b.status === "failure" && b.log_tail.length
            ? ["  last log lines:", ...b.log_tail.map((l) => `    ${l}`)]
            : []),
        ]
          .filter(Boolean)
          .join("\n"),
      );
    });
  build
    .command("logs <id>")
    .description("a build's log; -f follows it through the deploy to the outcome")
    .option("-f, --follow", "follow the log through the deploy; exits 1 unless the release went live")
    .action(async (id: string, o: { follow?: boolean }) => {
      const c = await client();
      const route = `/api/v1/builds/${encodeURIComponent(id)}/logs`;
      if (!o.follow) {
        const r = await c.request<{ lines: string[] }>("GET", route);
        process.stdout.write(r.lines.join("\n") + (r.lines.length ? "\n" : ""));
        return;
      }
      const res = await c.raw("GET", `${route}?follow=true`);
      if (!res.ok || !res.body) {
        await c.request("GET", route);
        return;
      }
      for await (const chunk of res.body) process.stdout.write(chunk as Uint8Array);
      // The stream ends with the push's outcome (live, or why not); scripts read it from the exit code.
      const ended = await c.request<BuildRow>("GET", `/api/v1/builds/${encodeURIComponent(id)}`);
      if (ended.status !== "success") process.exitCode = 1;
    });
  build
    .command("cancel <id>")
    .description("stop a waiting or running build")
    .addOption(json())
    .action(async (id: string, o: { json?: boolean }) => {
      const b = await (
        await client()
      ).request<BuildRow>("POST", `/api/v1/builds/${encodeURIComponent(id)}/cancel`);
      out(!!o.json, b, () => `build ${b.id}: ${b.status}`);
    });

  program
    .command("config")
    .description("the components config (slipway.yaml or toolforge.yaml)")
    .command("validate [path]")
    .description("check a config file offline; default slipway.yaml, else toolforge.yaml")
    .addOption(json())
    .action(async (file: string | undefined, o: { json?: boolean }) => {
      const result = await validateConfigFile(file);
      out(
        !!o.json,
        { ok: result.ok, file: result.file, problems: result.problems ?? [], config: result.config },
        () => result.output.trimEnd(),
      );
      if (!result.ok) process.exitCode = 1;
    });

  const deployment = program.command("deployment").description("releases of a tool");
  deployment
    .command("list")
    .description("the tool's releases, newest first; the live one is marked")
    .addOption(toolOpt())
    .addOption(json())
    .action(async (o: { tool?: string; json?: boolean }) => {
      const c = await client();
      const tool = await resolveTool(c, o.tool ?? config.cli.tool);
      const list = await c.request<
        { id: string; status: string; commit: string; live: boolean; reason?: string; created_at: string }[]
      >("GET", `/api/v1/tools/${tool}/deployments`);
      out(!!o.json, list, () =>
        list.length
          ? list
              .map(
                (r) =>
                  `${r.id}  ${(r.live ? "live" : r.status).padEnd(10)} ${r.commit.slice(0, 12)}  ${r.created_at}  ${r.reason ?? ""}`,
              )
              .join("\n")
          : "no deployments yet",
      );
    });
  deployment
    .command("show <id>")
    .description("one release as JSON: commit, image, trigger, config, status")
    .addOption(toolOpt())
    .addOption(json())
    .action(async (id: string, o: { tool?: string; json?: boolean }) => {
      const c = await client();
      const tool = await resolveTool(c, o.tool ?? config.cli.tool);
      const r = await c.request<unknown>(
        "GET",
        `/api/v1/tools/${tool}/deployments/${encodeURIComponent(id)}`,
      );
      out(!!o.json, r, () => JSON.stringify(r, null, 2));
    });
  return program;
}

interface ToolDetail {
  name: string;
  git_url: string;
  webhook_url: string;
  web_url: string;
  source: { url: string; ref: string } | null;
  latest_build: { id: string; status: string; commit: string } | null;
  live_release: { id: string; commit: string; created_at: string } | null;
  gitlab?: { gitlab_url: string; project_path: string; web_url: string } | null;
}

/** `tools show` as text: what a maintainer checks first, the full record stays behind `--json`. */
function toolSummary(
  t: ToolDetail,
  web: { state: string; address: string | null } | undefined,
  jobs: unknown[] | undefined,
): string {
  const live = t.live_release;
  const build = t.latest_build;
  return [
    `tool ${t.name}`,
    `  live release  ${live ? `${live.id} (commit ${live.commit.slice(0, 12)}, since ${live.created_at})` : "none yet"}`,
    `  webservice    ${web ? web.state : "unknown"}`,
    `  jobs          ${jobs ? jobs.length : "unknown"}`,
    `  last build    ${build ? `${build.id} ${build.status} (commit ${build.commit.slice(0, 12)})` : "none yet"}`,
    `  web           ${t.web_url}`,
    `  git remote    ${t.git_url}`,
    `  webhook       ${t.webhook_url}`,
    `  GitLab        ${t.gitlab ? `${t.gitlab.project_path} (${t.gitlab.web_url})` : "not linked"}`,
  ].join("\n");
}

/**
 * The version in the checkout's package.json, which `slipway --version` prints. A missing or broken
 * package.json must not break every other command, so it reads as "unknown".
 */
function packageVersion(repoRoot: string): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version?: string };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

export { ApiError };
