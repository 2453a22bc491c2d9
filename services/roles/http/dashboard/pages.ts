import { TERMINAL_STATUSES, type Build } from "../../../domain/builds/build.js";
import type { JobView, RunLog } from "../../../domain/jobs/job-service.js";
import type { ReleaseView } from "../../../domain/releases/release-service.js";
import type { ContainerUsage } from "../../../ports/runtime.js";
import type { UsageSample } from "../../../ports/usage.js";
import type { Principal } from "../auth.js";
import { html, type Html } from "./html.js";

/** Who is signed in and the CSRF token their forms carry; absent on the sign-in page. */
export interface Viewer {
  readonly principal: Principal;
  readonly csrf: string;
}

export function layout(title: string, viewer: Viewer | undefined, body: Html): Html {
  const who = viewer?.principal.kind === "admin" ? "admin" : viewer ? `tool ${viewer.principal.tool}` : "";
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · Slipway</title>
        <link rel="stylesheet" href="/ui/static/dashboard.css" />
        <script src="/ui/static/dashboard.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header>
          <a class="brand" href="/ui/">Slipway</a>
          ${
            viewer
              ? html`<span class="who">Signed in as ${who}</span>
                  <form method="post" action="/ui/sign-out" class="inline">
                    <input type="hidden" name="csrf" value="${viewer.csrf}" />
                    <button type="submit">Sign out</button>
                  </form>`
              : ""
          }
        </header>
        <main id="main">${body}</main>
      </body>
    </html> `;
}

export function signInPage(error?: string): Html {
  return layout(
    "Sign in",
    undefined,
    html`<h1>Sign in</h1>
      <p>Use your tool's API token (from <code>slipway tools create</code>) or the admin token.</p>
      ${error ? html`<p class="error" role="alert" id="sign-in-error">${error}</p>` : ""}
      <form method="post" action="/ui/sign-in" class="stack">
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          required
          ${error ? html`aria-describedby="sign-in-error" aria-invalid="true"` : ""}
        />
        <button type="submit">Sign in</button>
      </form>`,
  );
}

export function errorPage(viewer: Viewer | undefined, status: number, message: string): Html {
  return layout(
    `Error ${status}`,
    viewer,
    html`<h1>${status === 404 ? "Not found" : status === 403 ? "Not allowed" : "Something went wrong"}</h1>
      <p class="error" role="alert">${message}</p>
      <p><a href="/ui/">Back to the dashboard</a></p>`,
  );
}

/** "3 min ago", from an ISO time; the exact time is in the element's title. */
export function age(iso: string | null | undefined, now: Date): Html {
  if (!iso) return html`–`;
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  const text =
    s < 60
      ? `${s} s ago`
      : s < 3600
        ? `${Math.floor(s / 60)} min ago`
        : s < 86400
          ? `${Math.floor(s / 3600)} h ago`
          : `${Math.floor(s / 86400)} d ago`;
  return html`<time datetime="${iso}" title="${iso}">${text}</time>`;
}

const short = (commit: string) => commit.slice(0, 12);

function status(text: string): Html {
  return html`<span class="status status-${text}">${text}</span>`;
}

/** Only http(s) links are rendered as links (a stored URL could say javascript:). */
function link(url: string | undefined, text?: string): Html {
  if (!url) return html`–`;
  return /^https?:\/\//i.test(url) ? html`<a href="${url}">${text ?? url}</a>` : html`${text ?? url}`;
}

/** A titled section of a page (its heading labels it for screen readers). */
function part(id: string, title: string, body: unknown): Html {
  return html`<section aria-labelledby="${id}-h">
    <h2 id="${id}-h">${title}</h2>
    ${body}
  </section>`;
}

/** A titled section holding a table of `items`, or `empty` when there are none. */
function tablePart<T>(
  id: string,
  title: string,
  items: readonly T[],
  headers: readonly string[],
  row: (item: T) => unknown[],
  empty: Html,
  highlight: (item: T) => boolean = () => false,
): Html {
  return part(id, title, items.length ? table(headers, items.map(row), items.map(highlight)) : empty);
}

/**
 * A table whose cells also carry their column's name: on a phone each row becomes a card of
 * "name: value" lines (the stylesheet shows data-label), so nothing hides off the right edge.
 */
function table(
  headers: readonly string[],
  rows: readonly unknown[][],
  highlight: readonly boolean[] = [],
): Html {
  return html`<div class="scroll">
    <table>
      <thead>
        <tr>
          ${headers.map((h) => html`<th scope="col">${h}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (cells, i) =>
            html`<tr${highlight[i] ? html` class="live"` : ""}>
              ${cells.map((c, j) => html`<td data-label="${headers[j]}">${c}</td>`)}
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

export interface ToolPageData {
  readonly tool: {
    readonly name: string;
    readonly git_url: string;
    readonly webhook_url: string;
    readonly web_url: string;
    readonly redeploy_url: string;
  };
  /** The GitLab link (no credentials), when the tool is linked. */
  readonly gitlab: { readonly project_url?: string } | undefined;
  readonly live: ReleaseView | undefined;
  readonly builds: readonly Build[];
  readonly releases: readonly ReleaseView[];
  readonly jobs: readonly JobView[];
  /** What serves the tool now, and its last output lines. */
  readonly webservice?:
    | {
        readonly state: string;
        readonly replicas: { readonly ready: number | null; readonly wanted: number | null };
        readonly note: string | null;
        readonly output: readonly string[];
        /** CPU and memory per container now; undefined where the runtime does not say. */
        readonly usage?: readonly ContainerUsage[] | undefined;
      }
    | undefined;
  readonly envNames: readonly string[];
  /** CPU and memory samples of the last hour, oldest first; undefined where none are taken. */
  readonly usageHistory?: readonly UsageSample[] | undefined;
  readonly now: Date;
  readonly flash?: string | undefined;
}

export function toolPage(d: ToolPageData, viewer?: Viewer): Html {
  const t = d.tool;
  const base = `/ui/tools/${encodeURIComponent(t.name)}`;
  const empty = d.builds.length === 0 && d.releases.length === 0;
  return layout(
    t.name,
    viewer,
    html`<h1>Tool ${t.name}</h1>
      ${d.flash ? html`<p class="flash" role="status">${d.flash}</p>` : ""} ${empty ? firstRun(t) : ""}
      ${part(
        "live",
        `Live release`,
        d.live
          ? html`<dl class="facts">
              <dt>Release</dt>
              <dd id="live-release">${d.live.id}</dd>
              <dt>Commit</dt>
              <dd><code>${short(d.live.commit)}</code></dd>
              <dt>Image digest</dt>
              <dd><code class="wrap">${d.live.image_digest}</code></dd>
              <dt>Went live</dt>
              <dd>${age(d.live.finished_at ?? d.live.created_at, d.now)}</dd>
              <dt>Serves</dt>
              <dd>${link(t.web_url)}</dd>
            </dl>`
          : html`<p>Nothing is live yet.</p>`,
      )}
      ${tablePart(
        "builds",
        "Builds",
        d.builds,
        ["Build", "Status", "Commit", "Trigger", "Started", "Reason"],
        (b) => [
          html`<a href="${base}/builds/${encodeURIComponent(b.id)}">${b.id}</a>`,
          status(b.status),
          html`<code>${short(b.commit)}</code> ${b.ref.replace(/^refs\/heads\//, "")}`,
          b.trigger.kind,
          age(b.created_at, d.now),
          b.reason ?? "",
        ],
        html`<p>No builds yet.</p>`,
      )}
      ${tablePart(
        "releases",
        "Releases",
        d.releases,
        ["Release", "Status", "Commit", "Trigger", "Made", "Action"],
        (r) => [
          r.id,
          html`${status(r.live ? "live" : r.status)}${r.reason ? html`<br /><small>${r.reason}</small>` : ""}`,
          html`<code>${short(r.commit)}</code>`,
          r.trigger.kind,
          age(r.created_at, d.now),
          !r.live && r.status !== "deploying" && !r.image_deleted
            ? html`<a class="button" href="${base}/rollback/${encodeURIComponent(r.id)}"
                >Roll back to ${r.id}</a
              >`
            : "",
        ],
        html`<p>No releases yet.</p>`,
        (r) => r.live,
      )}
      ${tablePart(
        "jobs",
        "Jobs",
        d.jobs,
        ["Job", "Type", "Schedule", "State", "Last exit code", "Last run", "Next run"],
        ({ job, status: s }) => [
          html`<a href="${base}/jobs/${encodeURIComponent(job.name)}">${job.name}</a>`,
          job.type,
          job.schedule ?? "–",
          html`${status(s.state)}${s.message ? html`<br /><small>${s.message}</small>` : ""}`,
          s.last_exit_code ?? "–",
          age(s.last_started_at, d.now),
          s.next_run_at ?? "–",
        ],
        html`<p>No jobs. Define them with <code>slipway jobs run</code> or in slipway.yaml.</p>`,
      )}
      ${d.webservice ? webservicePart(d.webservice) : ""}
      ${d.usageHistory ? usagePart(d.usageHistory, d.now) : ""}
      ${part(
        "env",
        `Environment variables`,
        d.envNames.length
          ? html`<p>
                Values are not on this page: "Show value" shows one masked (<code
                  >slipway envvars show NAME</code
                >
                reads it whole).
              </p>
              <ul class="names">
                ${d.envNames.map(
                  (n) =>
                    html`<li>
                      <code>${n}</code>
                      ${
                        viewer
                          ? html`<form
                              method="post"
                              action="${base}/envvars/${encodeURIComponent(n)}"
                              class="inline"
                            >
                              <input type="hidden" name="csrf" value="${viewer.csrf}" />
                              <button type="submit" aria-label="Show value of ${n}">Show value</button>
                            </form>`
                          : ""
                      }
                    </li>`,
                )}
              </ul>`
          : html`<p>None set.</p>`,
      )}
      <section aria-labelledby="urls-h">
        <h2 id="urls-h">Addresses</h2>
        <dl class="facts">
          <dt>Web</dt>
          <dd>${link(t.web_url)}</dd>
          <dt>Git remote</dt>
          <dd><code class="wrap">${t.git_url}</code></dd>
          <dt>GitLab webhook</dt>
          <dd><code class="wrap">${t.webhook_url}</code></dd>
          <dt>Redeploy webhook</dt>
          <dd><code class="wrap">${t.redeploy_url}?token=…</code> (the tool's webhook secret)</dd>
          <dt>GitLab project</dt>
          <dd>${d.gitlab?.project_url ? link(d.gitlab.project_url) : "not linked"}</dd>
        </dl>
      </section>`,
  );
}

function webservicePart(w: NonNullable<ToolPageData["webservice"]>): Html {
  const { ready, wanted } = w.replicas;
  return part(
    "web",
    "Webservice",
    html`<dl class="facts">
        <dt>State</dt>
        <dd>${status(w.state)}${w.note ? html` <small>${w.note}</small>` : ""}</dd>
        <dt>Replicas up</dt>
        <dd id="replicas-up">${ready ?? "–"} of ${wanted ?? "–"}</dd>
      </dl>
      ${
        w.usage?.length
          ? table(
              ["Process", "Replica", "CPU now", "Memory now"],
              w.usage.map((u) => [
                u.process,
                u.replica,
                percent(u.cpuPercent),
                `${bytes(u.memoryBytes)} / ${bytes(u.memoryLimitBytes)}`,
              ]),
            )
          : ""
      }
      ${
        w.output.length
          ? html`<h3 id="output-h">Output (last ${w.output.length} lines)</h3>
              <pre class="log" tabindex="0" aria-labelledby="output-h">
${w.output.map((l) => `${l}\n`).join("")}</pre>`
          : html`<p>No output yet.</p>`
      }`,
  );
}

const KIND_NAMES: Record<string, string> = { web: "Webservice", job: "Jobs" };

/** CPU and memory per process kind: now (the newest sample) and a sparkline of the kept samples. */
function usagePart(samples: readonly UsageSample[], now: Date): Html {
  const latest = samples.at(-1);
  const kinds = (["web", "job"] as const).filter((k) => samples.some((s) => s.kinds[k]));
  return part(
    "usage",
    "Resource use, last hour",
    latest
      ? html`<p>
            ${samples.length} ${samples.length === 1 ? "sample" : "samples"}, one a minute while the tool has
            containers running; the newest ${age(latest.at, now)}. Sums over the kind's containers.
          </p>
          ${table(
            ["Processes", "CPU now", "CPU", "Memory now", "Memory"],
            kinds.map((k) => {
              const cpu = samples.map((s) => s.kinds[k]?.cpuPercent ?? 0);
              const mem = samples.map((s) => s.kinds[k]?.memoryBytes ?? 0);
              return [
                KIND_NAMES[k],
                percent(latest.kinds[k]?.cpuPercent ?? 0),
                sparkline(cpu, percent, `CPU of ${KIND_NAMES[k]?.toLowerCase()}`),
                bytes(latest.kinds[k]?.memoryBytes ?? 0),
                sparkline(mem, bytes, `Memory of ${KIND_NAMES[k]?.toLowerCase()}`),
              ];
            }),
          )}`
      : html`<p>
          No samples in the last hour: they are taken every minute while the tool has containers running.
        </p>`,
  );
}

const percent = (v: number) => `${v.toFixed(1)}%`;

function bytes(v: number): string {
  if (v >= 1024 ** 3) return `${(v / 1024 ** 3).toFixed(2)} GiB`;
  if (v >= 1024 ** 2) return `${(v / 1024 ** 2).toFixed(1)} MiB`;
  return `${Math.round(v / 1024)} KiB`;
}

/** An inline SVG line of `values` (oldest left), scaled to their highest; its label says the range. */
function sparkline(values: readonly number[], format: (v: number) => string, what: string): Html {
  const W = 120;
  const H = 24;
  const max = Math.max(...values, 0);
  const min = Math.min(...values);
  const x = (i: number) => (values.length > 1 ? (i / (values.length - 1)) * W : W);
  const y = (v: number) => (max > 0 ? H - 2 - (v / max) * (H - 4) : H - 2);
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const last = values.length - 1;
  return html`<svg
    class="spark"
    viewBox="0 0 ${W} ${H}"
    width="${W}"
    height="${H}"
    role="img"
    aria-label="${what}: ${values.length} samples, lowest ${format(min)}, highest ${format(max)}"
  >
    <polyline points="${points}" fill="none" stroke="currentColor" stroke-width="1.5" />
    <circle cx="${x(last).toFixed(1)}" cy="${y(values[last] ?? 0).toFixed(1)}" r="2" fill="currentColor" />
  </svg>`;
}

function firstRun(t: ToolPageData["tool"]): Html {
  return html`<section class="guide" aria-labelledby="guide-h">
    <h2 id="guide-h">First deploy</h2>
    <p>This tool has no builds yet. From your app's git repository:</p>
    <ol>
      <li>
        Add Slipway as a remote:
        <pre><code>git remote add slipway ${t.git_url}</code></pre>
      </li>
      <li>
        Push (any user name; the password is the tool's API token):
        <pre><code>git push slipway main</code></pre>
      </li>
      <li>The push prints a build id; this page lists the build, and its log follows it to live.</li>
    </ol>
    <p>
      The app needs a <code>Procfile</code> with a <code>web:</code> process (or a buildpack-detected start
      command) listening on <code>$PORT</code>.
    </p>
  </section>`;
}

/** A page under a tool: a link back to it, then the heading. */
function subPage(title: string, tool: string, viewer: Viewer | undefined, body: Html): Html {
  return layout(
    title,
    viewer,
    html`<p><a href="/ui/tools/${encodeURIComponent(tool)}">← ${tool}</a></p>
      <h1>${title}</h1>
      ${body}`,
  );
}

export function buildPage(
  d: { tool: string; build: Build; lines: readonly string[] },
  viewer?: Viewer,
): Html {
  const b = d.build;
  const base = `/ui/tools/${encodeURIComponent(d.tool)}`;
  return subPage(
    `Build ${b.id}`,
    d.tool,
    viewer,
    html` <dl class="facts">
        <dt>Status</dt>
        <dd><span id="build-status" role="status" aria-live="polite">${b.status}</span></dd>
        <dt>Commit</dt>
        <dd><code>${short(b.commit)}</code> ${b.ref}</dd>
        <dt>Trigger</dt>
        <dd>${b.trigger.kind}</dd>
        ${
          b.reason && TERMINAL_STATUSES.has(b.status)
            ? html`<dt>Reason</dt>
                <dd>${b.reason}</dd>`
            : ""
        }
      </dl>
      <h2 id="log-h">Log</h2>
      <pre
        id="build-log"
        class="log"
        tabindex="0"
        aria-labelledby="log-h"
        data-follow="${base}/builds/${encodeURIComponent(b.id)}/log"
      >
${d.lines.map((l) => `${l}\n`).join("")}</pre>`,
  );
}

export function envValuePage(
  d: { tool: string; name: string; masked: string; length: number },
  viewer: Viewer,
): Html {
  return subPage(
    `Environment variable ${d.name}`,
    d.tool,
    viewer,
    html`<dl class="facts">
        <dt>Value (masked)</dt>
        <dd><code id="env-value">${d.length ? d.masked : "(empty)"}</code></dd>
        <dt>Length</dt>
        <dd>${d.length} ${d.length === 1 ? "character" : "characters"}</dd>
      </dl>
      <p>
        Only the first and last two characters of a value longer than 8 are shown. The whole value:
        <code>slipway envvars show ${d.name}</code>.
      </p>`,
  );
}

export function rollbackPage(
  d: { tool: string; target: ReleaseView; live: ReleaseView | undefined },
  viewer: Viewer,
): Html {
  const base = `/ui/tools/${encodeURIComponent(d.tool)}`;
  return subPage(
    `Roll back ${d.tool}?`,
    d.tool,
    viewer,
    html` <p>
        A new release will run release <strong>${d.target.id}</strong> (commit
        <code>${short(d.target.commit)}</code>) again, without a build.
        ${d.live ? html`It replaces the live release ${d.live.id} (commit <code>${short(d.live.commit)}</code>) once healthy.` : ""}
      </p>
      <form method="post" action="${base}/rollback/${encodeURIComponent(d.target.id)}" class="stack">
        <input type="hidden" name="csrf" value="${viewer.csrf}" />
        <button type="submit" class="danger">Yes, roll back to ${d.target.id}</button>
        <a href="${base}">Cancel</a>
      </form>`,
  );
}

export function jobPage(
  d: { tool: string; view: JobView; runs: readonly RunLog[]; now: Date },
  viewer?: Viewer,
): Html {
  const { job, status: s } = d.view;
  return subPage(
    `Job ${job.name}`,
    d.tool,
    viewer,
    html` <dl class="facts">
        <dt>Type</dt>
        <dd>${job.type}</dd>
        <dt>Command</dt>
        <dd><code class="wrap">${job.command}</code></dd>
        <dt>Schedule</dt>
        <dd>${job.schedule ?? "–"}</dd>
        <dt>State</dt>
        <dd>${status(s.state)}</dd>
        <dt>Last exit code</dt>
        <dd>${s.last_exit_code ?? "–"}</dd>
        ${
          s.message
            ? html`<dt>Message</dt>
                <dd>${s.message}</dd>`
            : ""
        }
      </dl>
      <h2>Runs</h2>
      ${
        d.runs.length
          ? [...d.runs].reverse().map(
              ({ run, lines }) =>
                html`<section class="run" aria-label="run ${run.id}">
                  <h3>Run ${run.id} ${status(run.status)}</h3>
                  <dl class="facts">
                    <dt>Started</dt>
                    <dd>${age(run.started_at, d.now)}</dd>
                    <dt>Trigger</dt>
                    <dd>${run.trigger}${run.attempt > 1 ? `, attempt ${run.attempt}` : ""}</dd>
                    <dt>Exit code</dt>
                    <dd>${run.exit_code ?? "–"}</dd>
                    ${
                      run.reason
                        ? html`<dt>Reason</dt>
                            <dd class="reason">${run.reason}</dd>`
                        : ""
                    }
                  </dl>
                  <pre class="log" tabindex="0" aria-label="log of run ${run.id}">
${lines.map((l) => `${l}\n`).join("")}</pre>
                </section>`,
            )
          : html`<p>No runs yet.</p>`
      }`,
  );
}

export interface AdminPageData {
  readonly tools: readonly {
    name: string;
    live: ReleaseView | undefined;
    latest: Build | undefined;
  }[];
  readonly queue: readonly Build[];
  readonly health: readonly HealthCheck[];
  readonly now: Date;
}

export interface HealthCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export function adminPage(d: AdminPageData, viewer: Viewer): Html {
  const waiting = d.queue.filter((b) => b.status === "pending");
  const running = d.queue.filter((b) => b.status !== "pending");
  const perTool = new Map<string, number>();
  for (const b of d.queue) perTool.set(b.tool, (perTool.get(b.tool) ?? 0) + 1);
  return layout(
    "Admin",
    viewer,
    html`<h1>All tools</h1>
      <section aria-labelledby="health-h">
        <h2 id="health-h">Health</h2>
        <ul class="health">
          ${d.health.map(
            (h) => html`<li>${status(h.ok ? "ok" : "down")} <strong>${h.name}</strong>: ${h.detail}</li>`,
          )}
        </ul>
      </section>
      <section aria-labelledby="queue-h">
        <h2 id="queue-h">Build queue</h2>
        <p>
          ${waiting.length} waiting, ${running.length} running or
          deploying${
            perTool.size
              ? html`; per tool: ${[...perTool].map(([t, n], i) => html`${i ? ", " : ""}${t} ${n}`)}`
              : ""
          }.
        </p>
        ${
          d.queue.length
            ? table(
                ["Build", "Tool", "Status", "Queued"],
                d.queue.map((b) => [
                  html`<a href="/ui/tools/${encodeURIComponent(b.tool)}/builds/${encodeURIComponent(b.id)}"
                    >${b.id}</a
                  >`,
                  b.tool,
                  status(b.status),
                  age(b.created_at, d.now),
                ]),
              )
            : ""
        }
      </section>
      ${part(
        "tools",
        `Tools (${d.tools.length})`,
        table(
          ["Tool", "Live release", "Latest build"],
          d.tools.map((t) => [
            html`<a href="/ui/tools/${encodeURIComponent(t.name)}">${t.name}</a>`,
            t.live
              ? html`${t.live.id} <code>${short(t.live.commit)}</code> ${age(t.live.created_at, d.now)}`
              : "–",
            t.latest ? html`${status(t.latest.status)} ${age(t.latest.created_at, d.now)}` : "–",
          ]),
        ),
      )}`,
  );
}
